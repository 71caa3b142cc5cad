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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

Value = Any  # torch.Tensor or dict[str, torch.Tensor]


@dataclass
class Code:
    """Features with positions: what a positional encoder returns and a positional decoder reads
    as memory (a structured latent z is one too).

    ``features`` has shape (B, *S, D): D features at each of the positions S (e.g. one per source
    token, S = (L,)); ``mask`` (B, *S) is True at real positions and False at padding (None: all
    real). A flat code -- one vector per example, the paper's latent -- is the case S = (), written
    as a plain (B, D) tensor: encoders of fixed-size modalities (images, attribute vectors) return
    tensors, and every function taking a code accepts both (see :func:`code_parts`).
    """

    features: torch.Tensor
    mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.features.dim() < 2:
            raise ValueError(f"a code has shape (B, *S, D); got {tuple(self.features.shape)}")
        if self.mask is not None and tuple(self.mask.shape) != tuple(self.features.shape[:-1]):
            raise ValueError(f"code mask of shape {tuple(self.mask.shape)} does not fit features of shape "
                             f"{tuple(self.features.shape)}: expected {tuple(self.features.shape[:-1])}")

    @property
    def positions(self) -> tuple[int, ...]:
        return tuple(self.features.shape[1:-1])

    def with_features(self, features: torch.Tensor) -> Code:
        """The same positions and mask carrying other features (e.g. a linear map of these)."""
        return Code(features, self.mask)


def code_parts(code: torch.Tensor | Code) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(features (B, *S, D), mask (B, *S) or None) of a code given as a :class:`Code` or a flat tensor."""
    if isinstance(code, Code):
        return code.features, code.mask
    return code, None


def has_positions(code: torch.Tensor | Code) -> bool:
    """Whether a code has positions (S non-empty)."""
    return code_parts(code)[0].dim() > 2


class ModalityOptions(BaseModel):
    """Options of a modality (network sizes, likelihood settings). Subclass per modality.

    ``decode_fields`` names the options that only steer decoding (beam width, length penalty...):
    they shape no weight, so a trained run may be evaluated or sampled with other values
    (``cmmkit evaluate/generate RUN --decode x.NAME=VALUE``); every other option is fixed for the
    run's life."""

    model_config = ConfigDict(extra="forbid")
    decode_fields: ClassVar[tuple[str, ...]] = ()


class Decoder(nn.Module, ABC):
    """Maps a code -- a flat (B, in_features) tensor, or a :class:`Code` (B, *S, in_features) with a
    mask for modalities whose ``positional`` is True -- to a distribution over the modality and
    scores it.

    ``forward`` returns an object with ``log_prob(x)`` and ``rsample(noise_scale)`` (for instance a
    :class:`~cmmkit.distributions.DiagonalGaussian`). Autoregressive decoders override
    :meth:`log_prob` (teacher forcing) and :meth:`generate` instead.
    """

    def log_prob(self, h: torch.Tensor | Code, x: Value) -> torch.Tensor:
        """log p(x | h) per example, shape (B,), in nats, for a prepared value ``x``."""
        return self(h).log_prob(x)

    def generate(self, h: torch.Tensor | Code, noise_scale: float = 0.0) -> Value:
        """A prepared value decoded from ``h``; ``noise_scale=0`` gives the distribution's mean/mode."""
        return self(h).rsample(noise_scale)


class Modality(ABC):
    """One modality of a pair. Subclasses set ``name`` and ``Options`` and implement the methods.

    ``info`` is the data-derived, JSON-serialisable state a trained run needs without the data
    (attribute names, their training means, image size...): it is saved in every checkpoint.
    """

    name: ClassVar[str]
    Options: ClassVar[type[ModalityOptions]] = ModalityOptions
    #: True when the encoder returns a :class:`Code` with positions (one per token, frame...) and the
    #: decoder reads such a code as memory (it must also read a flat (B, D) code as one position).
    #: A latent conditioned on a positional y has y's positions (structured latents).
    positional: ClassVar[bool] = False

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
        """A network mapping a prepared value to features ending in a nonlinearity: a (B, out_features)
        tensor, or for a ``positional`` modality a :class:`Code` (B, *S, out_features) with its mask."""

    @abstractmethod
    def decoder(self, in_features: int) -> Decoder:
        """A network mapping a code with ``in_features`` features (flat, or positional when this
        modality is ``positional``) to this modality's likelihood."""

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
