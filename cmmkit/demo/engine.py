"""The runs behind a ``cmmkit demo`` page: loaded once, called per request (no gradio here).

Every model call goes through :meth:`DemoRuns.seeded`: cmmkit's models draw their noise from
torch's global generator (``randn_like`` in the latents, token sampling), so each request forks the
global RNG state, seeds it with the page's seed, and holds one lock while it runs. Two requests
therefore never share random numbers, and a request gives the same output for the same seed
whatever else runs at the same time. The lock serialises model calls; torch already spreads one
call over the machine's cores.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cmmkit.demo.spec import Example, ModalityDemo, PairDemo
from cmmkit.errors import CmmkitError, ConfigError, DataError
from cmmkit.runs import TrainedRun

log = logging.getLogger(__name__)

#: uploads larger than this (bytes) or with more pixels than this are refused with a message
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000


class DemoError(CmmkitError):
    """A request the page cannot serve; the message is shown to the user as it is."""


@dataclass
class RunResult:
    """One run's answer to a request: ``outputs`` in x's users' form (None when it could not),
    ``alternatives`` (sampled outputs, when x declares some) and ``note`` (why not, or "")."""

    outputs: list[Any]
    alternatives: list[Any]
    note: str = ""


def describe(run: TrainedRun) -> str:
    """``cmma (runs/my-run)``: how a run is labelled on the page."""
    return f"{run.model.name} ({run.path.name})"


class DemoRuns:
    """The runs of one page (same pair), their declarations, examples and the request lock."""

    def __init__(self, runs: list[TrainedRun], data_dir: Path | None = None) -> None:
        if not runs:
            raise ConfigError("cmmkit demo needs at least one run folder")
        first = runs[0]
        for run in runs:
            if run.pair.name != first.pair.name:
                raise ConfigError(f"{run.path} is a {run.pair.name} run but {first.path} is a {first.pair.name} "
                                  "run; runs shown side by side must be of one pair")
            if not run.model.can_generate:
                raise ConfigError(f"{run.path}: a {run.model.name} run does not generate (is it a judge?); "
                                  "give runs trained with `cmmkit train`")
        self.runs = runs
        self.pair = first.pair
        self.x_spec = self._spec(first.x, "generated")
        self.y_spec = self._spec(first.y, "conditioning")
        names = [c.name for c in self.y_spec.controls]
        for run in runs[1:]:
            other = [c.name for c in self._spec(run.y, "conditioning").controls]
            if other != names:
                raise ConfigError(f"{run.path} and {first.path} take different conditions "
                                  f"({len(other)} vs {len(names)} values); side by side needs the same ones")
        self.pair_spec: PairDemo = first.pair.demo_spec(first.config.pair, data_dir or first.config.data.data_dir) \
            or PairDemo()
        self.inferrer = next((r for r in runs if r.model.can_infer), None)
        self.examples: dict[str, Example] = {}
        self.notes: list[str] = []
        if self.pair_spec.examples is not None:
            try:
                self.examples = {e.label: e for e in self.pair_spec.examples()}
            except (DataError, OSError) as exc:
                self.notes.append(f"no examples to pick: {exc}")
        self._lock = threading.Lock()
        self._cuda = sorted({r.device.index or 0 for r in runs if r.device.type == "cuda"})

    @staticmethod
    def _spec(modality: Any, role: str) -> ModalityDemo:
        spec = modality.demo_spec()
        if spec is None:
            raise ConfigError(f"the {role} modality {modality.name!r} declares nothing for the demo page "
                              "(Modality.demo_spec returns None)")
        return spec

    @property
    def can_edit(self) -> bool:
        """Whether the page offers editing: x can be uploaded and some run edits."""
        return self.x_spec.upload is not None and any(r.model.can_edit for r in self.runs)

    @contextmanager
    def seeded(self, seed: int) -> Iterator[None]:
        """Run a model call with the global RNG forked and seeded with ``seed``, under the lock."""
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise DemoError(f"seed {seed!r}: expected a whole number") from None
        if not 0 <= seed < 2**63:
            raise DemoError(f"seed {seed}: expected a number from 0 to 2^63 - 1")
        with self._lock, torch.random.fork_rng(devices=self._cuda):
            torch.manual_seed(seed)
            yield

    # --- requests ------------------------------------------------------------------------
    def fill(self, given: dict[str, Any], base: str | None) -> dict[str, Any]:
        """The full condition shown for the values the user set: the rest filled from ``base`` (for
        modalities with bases, e.g. the conditional mean of the other attributes)."""
        y = self.runs[0].y
        if not self.y_spec.bases:
            return dict(given)
        kwargs = {"base": base} if base else {}
        full = y.to_user(y.prepare(y.from_user([given], **kwargs), dequantize=False))[0]
        return {**full, **{k: float(v) for k, v in given.items()}}

    def generate(self, condition: dict[str, Any], noise: float = 0.0, seed: int = 0,
                 base: str | None = None) -> list[RunResult]:
        """Each run's output for ``condition`` (latent noise ``noise``: 0 = the means, §4.5; the
        decoder's own noise is off), plus sampled alternatives where x declares them."""
        if not 0.0 <= float(noise) <= 10.0:
            raise DemoError(f"noise {noise}: expected a scale from 0 to 10 (0: the noise-free means)")
        kwargs = {"base": base} if base and self.y_spec.bases else {}
        results = []
        for run in self.runs:
            with self.seeded(seed):
                out = run.generate([condition], noise_scale=float(noise), output_noise=0.0, condition_options=kwargs)
            alts: list[Any] = []
            if self.x_spec.alternatives:
                with self.seeded(seed):
                    alts = run.generate([condition], noise_scale=max(1.0, float(noise)), output_noise=0.0,
                                        n=self.x_spec.alternatives, condition_options=kwargs)
            results.append(RunResult(out, alts))
        return results

    def original(self, item: Any, example: str | None = None) -> tuple[Any, dict[str, Any], str]:
        """(x, its condition, where the condition came from) for an uploaded x or a picked example:
        the pair's known condition when it has one, else inferred from x by a run that can."""
        if example:
            if example not in self.examples:
                raise DemoError(f"no example named {example!r}")
            item, known = self.examples[example].load()
            if known is not None:
                return item, known, f"the data's own condition for {example}"
        if item is None:
            raise DemoError("upload a file or pick an example first")
        if self.inferrer is None:
            raise DemoError("this x has no known condition and no loaded run can infer one: start the demo "
                            "with a run that infers y from x as well (e.g. a cmma run trained with "
                            "--set model.posterior=x)")
        with self.seeded(0):
            inferred = self.inferrer.infer([item])[0]
        return item, inferred, f"inferred from the image by {describe(self.inferrer)}"

    def edit(self, item: Any, original: dict[str, Any], changes: dict[str, Any], seed: int = 0) -> list[RunResult]:
        """Each run's (unchanged reconstruction, edit) of ``item`` whose condition is ``original``
        (§4.5); runs that cannot edit say why in their note."""
        results = []
        for run in self.runs:
            if not run.model.can_edit:
                results.append(RunResult([None, None], [], f"a {run.model.name} run {run.model.edit_refusal}"))
                continue
            with self.seeded(seed):
                x = run.prepare_x([item])  # converted once for both edits
                same, _ = run.edit(x, {}, original=[original])
                edited, _ = run.edit(x, changes, original=[original])
            results.append(RunResult([same[0], edited[0]], []))
        return results

    def read_upload(self, path: str | Path) -> Any:
        """An uploaded file as x's users' form, refused with a message when it is too large or not
        of the declared upload kind (only ``"image"`` is declared today)."""
        from PIL import Image, UnidentifiedImageError

        path = Path(path)
        name = path.name
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise DemoError(f"cannot read the upload {name}: {exc.strerror or exc}") from None
        if size > MAX_UPLOAD_BYTES:
            raise DemoError(f"{name} is {size / 2**20:.1f} MB; upload an image of at most "
                            f"{MAX_UPLOAD_BYTES // 2**20} MB")
        try:
            with Image.open(path) as im:
                if im.width * im.height > MAX_UPLOAD_PIXELS:
                    raise DemoError(f"{name} is {im.width}x{im.height} pixels; upload an image of at most "
                                    f"{MAX_UPLOAD_PIXELS // 1_000_000} megapixels (it is resized to "
                                    f"{self._x_size()} anyway)")
                return im.convert("RGB")
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
            kind = "too large to decode safely" if isinstance(exc, Image.DecompressionBombError) else "not an image"
            raise DemoError(f"{name} is {kind} (PNG, JPEG, PPM, ... expected)") from None

    def _x_size(self) -> str:
        shape = getattr(self.runs[0].x, "shape", None)
        return f"{shape[-1]}x{shape[-2]}" if shape else "the model's size"
