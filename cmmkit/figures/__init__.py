"""The paper's figures as commands: ``cmmkit figure NAME RUN [RUN ...] -o out.png``.

A figure is a function ``(runs, options) -> (image, notes)``, the image a PIL image or a list of
panels (stacked one under the other), the notes lines to print (e.g. measured numbers). The core provides the ones that
only need a latent-variable model (``fig4``: 2-d priors and posteriors); a pair adds its own through
:meth:`cmmkit.pair.Pair.figures`, so the command knows nothing of any pair.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import Field

from cmmkit.config import Options
from cmmkit.errors import ConfigError, suggest


class FigureOptions(Options):
    """What a figure is drawn with (validated: a bad value is a ConfigError naming its flag)."""

    examples: list[int] | None = Field(None, min_length=1, description="which examples to show (None: the "
                                                                         "figure's default)")
    count: int = Field(6, ge=1, description="how many individuals / examples")
    infer_with: Any = Field(None, description="a TrainedRun that infers missing conditions")
    data_dir: Path | None = None
    device: str = "cpu"


Figure = Callable[[list[Any], FigureOptions], tuple[Any, list[str]]]


def core_figures() -> dict[str, Figure]:
    from cmmkit.figures.latent import latent_figure

    return {"fig4": latent_figure}


def available(pair: Any) -> dict[str, Figure]:
    return {**core_figures(), **pair.figures()}


def make_figure(name: str, run_dirs: list[str | Path], output: str | Path, *, device: str = "cpu",
                examples: list[int] | None = None, count: int = 6, infer_with: str | Path | None = None,
                data_dir: str | Path | None = None, faces: list[int] | None = None) -> list[Path]:
    """Load the runs, draw figure ``name`` with one panel per run, write ``output`` (PNG/JPG).
    ``examples``/``count`` pick the examples shown (``faces`` is the older name of ``examples``),
    ``infer_with`` a run that infers missing conditions, ``data_dir`` the pair's data when it is
    not where the run found it."""
    from cmmkit.images import save_image, stack
    from cmmkit.runs import load_run

    output = Path(output)
    if output.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ConfigError(f"-o {output}: expected a .png or .jpg output path")
    examples = examples if examples is not None else faces
    FigureOptions(examples=examples or None, count=count, data_dir=data_dir, device=device)  # checked before loading
    runs = [load_run(r, device=device) for r in run_dirs]
    pairs = {r.pair.name for r in runs}
    if len(pairs) > 1:
        raise ConfigError(f"figure {name}: the runs are of different pairs ({', '.join(sorted(pairs))})")
    figures = available(runs[0].pair)
    if name not in figures:
        raise ConfigError(f"figure {name!r}: not a figure of pair {runs[0].pair.name}.{suggest(name, figures)} "
                          f"Available: {', '.join(sorted(figures))}")
    opts = FigureOptions(examples=list(examples) if examples else None, count=count, device=device,
                         infer_with=load_run(infer_with, device=device) if infer_with else None, data_dir=data_dir)
    image, notes = figures[name](runs, opts)
    for note in notes:
        print(note)  # the figure's measured numbers: a result of the command, on stdout
    return [save_image(image if isinstance(image, Image.Image) else stack(image), output)]


def load_split(run: Any, split: str, data_dir: Path | None = None) -> Any:
    """A split of a run's pair (its data found as at training, or in ``data_dir``)."""
    from cmmkit.runs import load_data

    data = load_data(run.config, data_dir=data_dir, progress=sys.stderr.isatty())
    if split not in data.splits:
        raise ConfigError(f"{run.path}: pair {run.pair.name} has no {split!r} split")
    return data.splits[split]


def panel_title(run: Any) -> str:
    return f"{run.model.name.upper()} ({run.path})"
