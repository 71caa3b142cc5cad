"""The LFW figures of the paper (§4.5): faces from attributes (Fig. 6), editing training faces
(Fig. 8) and editing faces that have no attribute row (Fig. 10). One labelled panel per run.

"Setting" an attribute means giving it its largest training value (1 for the binarized mirror;
the largest classifier score for the official real-valued file), "unsetting" its smallest. Where
the attribute set has an exclusive partner, the edit sets that too (Eyeglasses unsets
No Eyewear, Mustache unsets No Beard, Mouth Slightly Open unsets Mouth Closed), otherwise the
condition would ask for a face with glasses and without eyewear at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from cmmkit.api import ConfigError, FigureOptions, labelled_grid, load_split, panel_title, resolve_dataset_dir

FIG6_ROWS = [("Female Asian", {"Male": "min", "Asian": "max"}), ("Female not Asian", {"Male": "min", "Asian": "min"}),
             ("Male Asian", {"Male": "max", "Asian": "max"}), ("Male not Asian", {"Male": "max", "Asian": "min"})]
FIG6_COLUMNS = [("no change", []), ("mouth open", ["Mouth Slightly Open"]), ("eyeglasses", ["Eyeglasses"]),
                ("bushy eyebrows", ["Bushy Eyebrows"]), ("big nose", ["Big Nose"]), ("pointy nose", ["Pointy Nose"]),
                ("big lips", ["Big Lips"])]
FIG8_ROWS = [("no change", []), ("big nose", ["Big Nose"]), ("eyeglasses", ["Eyeglasses"]),
             ("mustache", ["Mustache"]), ("big lips", ["Big Lips"])]
FIG10_ROWS = [("(a) unchanged", []), ("(b) big nose", ["Big Nose"]), ("(c) mustache", ["Mustache"]),
              ("(d) eyeglasses + mustache", ["Eyeglasses", "Mustache"])]
PARTNERS = {"Eyeglasses": "No Eyewear", "Mustache": "No Beard", "Mouth Slightly Open": "Mouth Closed"}


def _value(run: Any, name: str, which: str) -> float:
    info = run.model.y.info
    if name not in info["names"]:
        raise ConfigError(f"{run.path}: its attributes have no {name!r}")
    lo, hi = run.model.y.bounds()
    return float((hi if which == "max" else lo)[info["names"].index(name)])


def setting(run: Any, names: list[str]) -> dict[str, float]:
    """The change that sets each attribute (and unsets its exclusive partner)."""
    out: dict[str, float] = {}
    for name in names:
        out[name] = _value(run, name, "max")
        partner = PARTNERS.get(name)
        if partner and partner in run.model.y.info["names"]:
            out[partner] = _value(run, partner, "min")
    return out


def fig6(runs: list[Any], opts: FigureOptions) -> tuple[Image.Image, list[str]]:
    """Faces from attributes (Fig. 6): 4 rows (sex x Asian) x 7 columns (one attribute set each),
    noise 0; unspecified attributes from their conditional mean given the specified ones."""
    panels = []
    for run in runs:
        if not run.model.can_generate:
            raise ConfigError(f"fig6: {run.path} is a {run.model.name} run, which does not generate")
        conds = []
        for _, row in FIG6_ROWS:
            base = {k: _value(run, k, v) for k, v in row.items()}
            conds += [{**base, **setting(run, names)} for _, names in FIG6_COLUMNS]
        faces = run.generate(conds, noise_scale=0.0)
        cells = [faces[i:i + len(FIG6_COLUMNS)] for i in range(0, len(faces), len(FIG6_COLUMNS))]
        panels.append(labelled_grid(cells, [r for r, _ in FIG6_ROWS], [c for c, _ in FIG6_COLUMNS],
                                    panel_title(run)))
    return panels, []  # type: ignore[return-value]


def _edit_panel(run: Any, faces: list[Image.Image], originals: list[dict[str, float]], rows: list[tuple[str, list[str]]],
                col_labels: list[str], title: str) -> Image.Image:
    cells, x = [faces], run.prepare_x(faces)  # the faces converted once for every row's edit
    for _, names in rows:
        edited, _ = run.edit(x, setting(run, names), original=originals)
        cells.append(edited)
    return labelled_grid(cells, ["input"] + [r for r, _ in rows], col_labels, title)


def _require_edit(runs: list[Any]) -> None:
    for run in runs:
        run.check_can_edit()


def fig8(runs: list[Any], opts: FigureOptions) -> tuple[Image.Image, list[str]]:
    """Editing training faces with their own attributes (Fig. 8): per run, the input faces, then
    rows no change (the reconstruction), big nose, eyeglasses, mustache, big lips (§4.5's five
    steps for CMMA; encode with the face's attributes and decode with the new ones for CVAE)."""
    _require_edit(runs)
    train = load_split(runs[0], "train", opts.data_dir)
    pick = list(opts.examples or range(opts.count))
    if max(pick) >= len(train) or min(pick) < 0:
        raise ConfigError(f"--faces: the training split has {len(train)} faces (0 to {len(train) - 1})")
    batch = runs[0].model.prepare(train.get_batch(torch.tensor(pick)), dequantize=False)
    faces = runs[0].x.to_user(batch["x"])
    originals = runs[0].y.to_user(batch["y"])
    panels = [_edit_panel(run, faces, originals, FIG8_ROWS, [f"train {i}" for i in pick], panel_title(run))
              for run in runs]
    return panels, []  # type: ignore[return-value]


def unattributed_faces(run: Any, data_dir: Path | None, count: int, pick: list[int] | None) -> tuple[list[str], list[Image.Image]]:
    """lfwcrop faces that have no row in the attribute file (about 90 of them)."""
    from cmmkit_lfw.data import FaceSource, faces_without_attributes, read_attributes_cached, read_ppm

    folder, _ = resolve_dataset_dir("lfw", data_dir or run.config.data.data_dir)
    table, _ = read_attributes_cached(folder / run.config.pair.attributes_file)
    source = FaceSource.open(folder)
    try:
        keys = faces_without_attributes(source, table)
        if not keys:
            raise ConfigError(f"{source.describe()}: every face has an attribute row; nothing for fig10")
        pick = list(pick or range(min(count, len(keys))))
        if max(pick) >= len(keys) or min(pick) < 0:
            raise ConfigError(f"--faces: there are {len(keys)} faces without attributes (0 to {len(keys) - 1})")
        chosen = [keys[i] for i in pick]
        images = [Image.fromarray(read_ppm(source.read(k), k)) for k in chosen]
    finally:
        source.close()
    return chosen, images


def fig10(runs: list[Any], opts: FigureOptions) -> tuple[Image.Image, list[str]]:
    """Editing faces with missing attributes (Fig. 10): the attributes are inferred from the face
    (q(y|z) on the x-only posterior of a ``model.posterior=x`` CMMA: the run itself, or
    ``--infer-with``), then edited as in Fig. 8: unchanged, big nose, mustache, eyeglasses + mustache."""
    _require_edit(runs)
    keys, faces = unattributed_faces(runs[0], opts.data_dir, opts.count, opts.examples)
    helper = opts.infer_with
    panels, notes = [], []
    for run in runs:
        inferrer = helper or run
        originals = inferrer.infer(faces)
        notes.append(f"{panel_title(run)}: attributes inferred by {inferrer.path}")
        title = panel_title(run) + ("" if inferrer is run else f", attributes inferred by {inferrer.path}")
        panels.append(_edit_panel(run, faces, originals, FIG10_ROWS, [k.rsplit("_", 1)[0][:14] for k in keys], title))
    return panels, notes  # type: ignore[return-value]


FIGURES = {"fig6": fig6, "fig8": fig8, "fig10": fig10}
