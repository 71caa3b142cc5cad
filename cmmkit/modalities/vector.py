"""Named real-valued vectors (e.g. the 73 LFW attributes) with an MLP encoder and Gaussian decoder.

``info``: ``{"names": [...], "mean": [...]}`` -- the training mean is the base that users' partial
specifications (``{"Male": 1}``) are filled from. The encoder is the f network of §4.1: one hidden
layer with the soft-thresholding unit log(1 + e^x). The decoder is q(y|z) of Table 1 (h2).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from cmmkit.distributions import DiagonalGaussian
from cmmkit.errors import DataError, suggest
from cmmkit.modality import Decoder, Modality, ModalityOptions


class NamedVectorOptions(ModalityOptions):
    hidden: int = Field(800, ge=1, description="hidden units of the decoder MLP (q(y|z))")
    logvar_floor: float = Field(-6.0, description="lower bound of the decoder's log-variance")


class GaussianVectorDecoder(Decoder):
    def __init__(self, in_features: int, dim: int, hidden: int, floor: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.Softplus(), nn.Linear(hidden, 2 * dim))
        self.floor = floor

    def forward(self, h: torch.Tensor) -> DiagonalGaussian:
        mu, raw = self.net(h).chunk(2, dim=-1)
        return DiagonalGaussian(mu, self.floor + F.softplus(raw - self.floor))


class NamedVectorModality(Modality):
    name = "named_vector"
    Options = NamedVectorOptions
    options: NamedVectorOptions

    @property
    def names(self) -> list[str]:
        return list(self.info["names"])

    @property
    def dims(self) -> int:
        return len(self.info["names"])

    def prepare(self, value: torch.Tensor, dequantize: bool = True) -> torch.Tensor:
        return value.float()

    def encoder(self, out_features: int) -> nn.Module:
        return nn.Sequential(nn.Linear(self.dims, out_features), nn.Softplus())

    def decoder(self, in_features: int) -> Decoder:
        return GaussianVectorDecoder(in_features, self.dims, self.options.hidden, self.options.logvar_floor)

    def from_user(self, items: list[Any]) -> torch.Tensor:
        """Each item: a mapping name -> value (unnamed entries from the training mean) or a full vector."""
        return torch.stack([self._one(item) for item in items])

    def _one(self, item: Any) -> torch.Tensor:
        base = torch.tensor(self.info["mean"], dtype=torch.float32)
        if isinstance(item, Mapping):
            index = {n: i for i, n in enumerate(self.names)}
            for key, val in item.items():
                if key not in index:
                    raise DataError(f"unknown attribute {key!r}.{suggest(key, index)} "
                                    f"Known attributes: {', '.join(self.names)}")
                try:
                    base[index[key]] = float(val)
                except (TypeError, ValueError):
                    raise DataError(f"attribute {key!r}: expected a number, got {val!r}") from None
            return base
        vec = torch.as_tensor(item, dtype=torch.float32)
        if vec.shape != (self.dims,):
            raise DataError(f"expected {self.dims} attribute values, got shape {tuple(vec.shape)}")
        return vec

    def to_user(self, value: torch.Tensor) -> list[dict[str, float]]:
        return [dict(zip(self.names, row.tolist())) for row in value.detach().cpu()]
