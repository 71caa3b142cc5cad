"""The modality interface: everything the engine knows about one side of a pair.

A modality turns what a dataset yields (a raw batch value: uint8 pixels, attribute scores, token
ids...) into model inputs, builds the networks that read and write it, owns its likelihood, and
converts from/to what users hold. The engine (bound, models, trainer) never looks inside a value:
it only calls these methods, so images, audio and text all go through the same code paths.

Values may be tensors or dicts of tensors (e.g. token ids plus a padding mask); the engine moves
them with :func:`to_device` and slices them with :func:`batch_size`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

Value = Any  # torch.Tensor or dict[str, torch.Tensor]


class ModalityOptions(BaseModel):
    """Options of a modality (network sizes, likelihood settings). Subclass per modality."""

    model_config = ConfigDict(extra="forbid")


class Decoder(nn.Module, ABC):
    """Maps a latent code (B, in_features) to a distribution over the modality and scores it.

    ``forward`` returns an object with ``log_prob(x)`` and ``rsample(noise_scale)`` (for instance a
    :class:`~cmmkit.distributions.DiagonalGaussian`). Autoregressive decoders override
    :meth:`log_prob` (teacher forcing) and :meth:`generate` instead.
    """

    def log_prob(self, h: torch.Tensor, x: Value) -> torch.Tensor:
        """log p(x | h) per example, shape (B,), in nats, for a prepared value ``x``."""
        return self(h).log_prob(x)

    def generate(self, h: torch.Tensor, noise_scale: float = 0.0) -> Value:
        """A prepared value decoded from ``h``; ``noise_scale=0`` gives the distribution's mean/mode."""
        return self(h).rsample(noise_scale)


class Modality(ABC):
    """One modality of a pair. Subclasses set ``name`` and ``Options`` and implement the methods.

    ``info`` is the data-derived, JSON-serialisable state a trained run needs without the data
    (attribute names, their training means, image size...): it is saved in every checkpoint.
    """

    name: ClassVar[str]
    Options: ClassVar[type[ModalityOptions]] = ModalityOptions

    def __init__(self, options: ModalityOptions, info: dict[str, Any]) -> None:
        self.options = options
        self.info = info

    # --- data ---------------------------------------------------------------------------
    @abstractmethod
    def prepare(self, value: Value, dequantize: bool = True) -> Value:
        """Raw batch value -> model input (float). Discrete data is dequantized when asked so that
        a density on it is a bound on the discrete likelihood."""

    @property
    @abstractmethod
    def dims(self) -> int:
        """Number of scalar dimensions of one example (for bits per dimension)."""

    def discrete_log_offset(self) -> float:
        """log P(discrete value) >= log p(dequantized value) + this offset (0 for continuous data)."""
        return 0.0

    # --- networks -----------------------------------------------------------------------
    @abstractmethod
    def encoder(self, out_features: int) -> nn.Module:
        """A network mapping a prepared value to features (B, out_features), ending in a nonlinearity."""

    @abstractmethod
    def decoder(self, in_features: int) -> Decoder:
        """A network mapping (B, in_features) to this modality's likelihood."""

    # --- users --------------------------------------------------------------------------
    @abstractmethod
    def from_user(self, items: list[Any]) -> Value:
        """What users hold (file paths, dicts of attribute values...) -> a raw batch value."""

    @abstractmethod
    def to_user(self, value: Value) -> list[Any]:
        """A prepared value (model output) -> what users want back (e.g. PIL images)."""

    def save_preview(self, real: Value, generated: Value, path: Any) -> bool:
        """Write a picture comparing real and generated prepared values (e.g. a PNG grid) to
        ``path`` (a ``.png`` path; a modality with nothing to draw may write a sibling file with
        its own suffix instead, e.g. ``.txt`` for text). Return False when it wrote nothing."""
        return False

    def save_outputs(self, items: list[Any], path: Path, columns: int = 1, labels: list[str] | None = None,
                     column_labels: list[str] | None = None) -> list[Path]:
        """Write user-form values (from :meth:`to_user`) to ``path`` for ``cmmkit generate`` and
        ``cmmkit edit``: e.g. a PNG grid of images (``columns`` per row, one row label each,
        optional column labels), WAV files plus a spectrogram PNG, or a text file. Return the files
        written; raise :class:`cmmkit.errors.ConfigError` naming the suffixes this modality writes
        when ``path`` has another one."""
        from cmmkit.errors import ConfigError

        raise ConfigError(f"the {self.name} modality cannot write outputs to files")

    def demo_spec(self) -> Any:
        """What ``cmmkit demo`` shows for this modality: a :class:`cmmkit.demo.spec.ModalityDemo`
        (controls to give a value, views to show one, the upload kind ``from_user`` reads), or None
        (the default) when it has nothing to show there."""
        return None


def to_device(value: Value, device: torch.device | str) -> Value:
    """Move a tensor or a (nested) dict of tensors to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


def batch_size(value: Value) -> int:
    """Number of examples in a raw or prepared value."""
    if isinstance(value, torch.Tensor):
        return value.shape[0]
    if isinstance(value, dict):
        return batch_size(next(iter(value.values())))
    return len(value)


def repeat(value: Value, n: int) -> Value:
    """Each example repeated ``n`` times in place ([a, b] -> [a, a, b, b] for n=2), tensors or dicts."""
    if isinstance(value, dict):
        return {k: repeat(v, n) for k, v in value.items()}
    return value.repeat_interleave(n, dim=0) if n > 1 else value


def select(value: Value, index: torch.Tensor | slice) -> Value:
    """Examples ``index`` of a tensor or dict value."""
    if isinstance(value, dict):
        return {k: select(v, index) for k, v in value.items()}
    return value[index]


def concat(values: list[Value]) -> Value:
    """Values of the same structure joined along the batch dimension."""
    if isinstance(values[0], dict):
        return {k: concat([v[k] for v in values]) for k in values[0]}
    return torch.cat(values)
