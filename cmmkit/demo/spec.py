"""What a pair and its modalities declare for ``cmmkit demo`` (plain data: no gradio import).

The page is built from these declarations only, so every pair gets a page without special cases:

- the conditioning modality y declares its **controls** (:meth:`cmmkit.modality.Modality.demo_spec`):
  one per key of the mapping its ``from_user`` reads (a slider per named attribute, a text box for a
  sentence or word, a choice among named values), and the **bases** ``from_user`` accepts for filling
  values the user leaves unset (named vectors: ``"conditional"``, ``"mean"``);
- the generated modality x declares its **views** (how to show one output: an image, an audio clip,
  text), the **upload** kind its ``from_user`` reads (``"image"``: images can be uploaded, edited and
  have their condition inferred) and how many sampled **alternatives** are worth showing beside the
  noise-free output (e.g. text, where samples differ);
- the pair (:meth:`cmmkit.pair.Pair.demo_spec`) groups y's controls (e.g. attributes by theme)
  and lists **examples** of x a user may pick (e.g. test examples by name).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class Slider:
    """A number in [minimum, maximum] under the key ``name``."""

    name: str
    minimum: float
    maximum: float
    value: float
    step: float = 0.01


@dataclass(frozen=True)
class Choice:
    """One of ``choices`` under the key ``name``."""

    name: str
    choices: tuple[str, ...]
    value: str
    label: str | None = None


@dataclass(frozen=True)
class Text:
    """Free text under the key ``name`` (a sentence, a digit word)."""

    name: str
    value: str = ""
    label: str | None = None
    lines: int = 1


Control = Slider | Choice | Text


@dataclass(frozen=True)
class View:
    """One way to show an output in users' form: ``render`` turns it into what the widget of
    ``kind`` shows (``"image"``: a PIL image; ``"audio"``: ``(sample_rate, int16 samples)``;
    ``"text"``: a string)."""

    kind: Literal["image", "audio", "text"]
    label: str
    render: Callable[[Any], Any] = lambda value: value


@dataclass(frozen=True)
class ModalityDemo:
    """A modality's declaration for the page; see the module docstring."""

    controls: tuple[Control, ...] = ()
    bases: tuple[str, ...] = ()
    views: tuple[View, ...] = ()
    upload: Literal["image"] | None = None
    alternatives: int = 0


@dataclass(frozen=True)
class Example:
    """An x a user may pick by ``label``; ``load()`` returns (x in users' form, its known condition
    in y's users' form or None when the pair has none for it)."""

    label: str
    load: Callable[[], tuple[Any, Any]]


@dataclass(frozen=True)
class PairDemo:
    """A pair's declaration for the page: control groups (title -> control names; controls in no
    group go to a last "other" group) and a function listing examples (read once at start-up)."""

    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    examples: Callable[[], list[Example]] | None = None


def audio_clip(waveform: Any, sample_rate: int) -> tuple[int, np.ndarray]:
    """A float waveform in [-1, 1] (tensor or array) as ``(sample_rate, int16 samples)``."""
    samples = np.asarray(waveform.detach().cpu() if hasattr(waveform, "detach") else waveform, dtype=np.float32)
    return int(sample_rate), (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def heatmap(values: Any, scale: int = 3, low: float | None = None, high: float | None = None) -> Any:
    """A 2-D array (rows, columns), e.g. a log-mel spectrogram, as a PIL image: row 0 at the bottom,
    magma colours from ``low`` to ``high`` (default its range), each cell ``scale`` pixels."""
    from matplotlib import colormaps
    from PIL import Image

    arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float32)
    lo = float(arr.min()) if low is None else low
    hi = float(arr.max()) if high is None else high
    norm = np.clip((arr - lo) / max(hi - lo, 1e-6), 0.0, 1.0)[::-1]
    rgb = (colormaps["magma"](norm)[..., :3] * 255.0 + 0.5).astype(np.uint8)
    image = Image.fromarray(rgb)
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)
