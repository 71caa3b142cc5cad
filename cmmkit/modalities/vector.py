"""Named real-valued vectors (e.g. attributes of a face) with an MLP encoder and Gaussian decoder.

``info`` (see :func:`vector_info`): names, and the training mean, covariance and range of every
dimension. Users give partial specifications (``{"a": 1}``); the unspecified values are filled
from a base:

- ``"conditional"`` (default): E[y_rest | y_given] under a Gaussian fitted to the training vectors,
  ``mu_r + S_rg S_gg^-1 (y_given - mu_g)``, clamped to the training range. Named dimensions are
  often correlated (when most training examples have ``a`` set, the plain mean of a dimension that
  goes with ``a`` is that of an example with ``a``); filling the rest consistently makes
  ``{"a": -1}`` an example without ``a``, not the average example with one value changed.
- ``"mean"``: the training mean, every unspecified dimension as in the average example.

The encoder is the f network of §4.1: one hidden layer with the soft-thresholding unit log(1 + e^x).
The decoder is q(y|z) of Table 1 (h2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

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

    def from_user(self, items: list[Any], base: Literal["conditional", "mean"] = "conditional") -> torch.Tensor:
        """Each item: a mapping name -> value (the others filled from ``base``, see the module
        docstring) or a full vector."""
        return torch.stack([self._one(item, base) for item in items])

    def bounds(self) -> tuple[list[float], list[float]]:
        """Each dimension's training (min, max); -1/+1 for runs saved before ranges were recorded
        (they were binarized)."""
        return (list(self.info.get("min", [-1.0] * self.dims)), list(self.info.get("max", [1.0] * self.dims)))

    def parse(self, item: Mapping[str, Any]) -> dict[int, float]:
        """Validated {index: value} of a user mapping: known names, numbers in the training range."""
        index = {n: i for i, n in enumerate(self.names)}
        lo, hi = self.info.get("min"), self.info.get("max")
        out = {}
        for key, val in item.items():
            if key not in index:
                raise DataError(f"unknown attribute {key!r}.{suggest(key, index)} "
                                f"Known attributes: {', '.join(self.names)}")
            try:
                v = float(val)
            except (TypeError, ValueError):
                raise DataError(f"attribute {key!r}: expected a number, got {val!r}") from None
            i = index[key]
            if lo is not None and hi is not None and not (lo[i] - 1e-6 <= v <= hi[i] + 1e-6):
                raise DataError(f"attribute {key!r}={v:g} is outside the training range "
                                f"[{lo[i]:g}, {hi[i]:g}]; expected a value in that range")
            out[i] = v
        return out

    def _one(self, item: Any, base: str) -> torch.Tensor:
        if isinstance(item, Mapping):
            given = self.parse(item)
            if base not in ("conditional", "mean"):
                raise DataError(f"base {base!r}: expected 'conditional' or 'mean'")
            vec = self.conditional_mean(given) if base == "conditional" else self.mean.clone()
            for i, v in given.items():
                vec[i] = v
            return vec
        vec = torch.as_tensor(item, dtype=torch.float32)
        if vec.shape != (self.dims,):
            raise DataError(f"expected {self.dims} attribute values, got shape {tuple(vec.shape)}")
        return vec

    @property
    def mean(self) -> torch.Tensor:
        return torch.tensor(self.info["mean"], dtype=torch.float32)

    def conditional_mean(self, given: dict[int, float]) -> torch.Tensor:
        """E[y | y_i = v for (i, v) in given] under a Gaussian with the training mean and
        covariance, clamped to the training range. Runs saved without a covariance fall back to
        the training mean."""
        mu = self.mean.double()
        if not given or "cov" not in self.info:
            return mu.float()
        cov = torch.tensor(self.info["cov"], dtype=torch.float64)
        g = torch.tensor(sorted(given), dtype=torch.long)
        r = torch.tensor([i for i in range(self.dims) if i not in given], dtype=torch.long)
        y_g = torch.tensor([given[int(i)] for i in g], dtype=torch.float64)
        s_gg = cov[g][:, g] + 1e-6 * torch.eye(len(g), dtype=torch.float64)
        out = mu.clone()
        out[r] = mu[r] + cov[r][:, g] @ torch.linalg.solve(s_gg, y_g - mu[g])
        if "min" in self.info and "max" in self.info:
            out = out.clamp(torch.tensor(self.info["min"], dtype=torch.float64),
                            torch.tensor(self.info["max"], dtype=torch.float64))
        return out.float()

    def to_user(self, value: torch.Tensor) -> list[dict[str, float]]:
        """Name -> value per row, clamped to the training range so that a model's output (e.g.
        attributes inferred from a face) is always valid input again."""
        value = value.detach().cpu().float()
        if "min" in self.info and "max" in self.info:
            value = value.clamp(torch.tensor(self.info["min"]), torch.tensor(self.info["max"]))
        return [dict(zip(self.names, row.tolist())) for row in value]

    def demo_spec(self) -> Any:
        """``cmmkit demo``: a slider per dimension over its training range, starting at the training
        mean; unset dimensions are filled from a base (see the module docstring)."""
        from cmmkit.demo.spec import ModalityDemo, Slider

        lo, hi = self.bounds()
        return ModalityDemo(controls=tuple(Slider(n, a, b, min(max(m, a), b), max(0.01, round((b - a) / 100, 3)))
                                           for n, a, b, m in zip(self.names, lo, hi, self.info["mean"])),
                            bases=("conditional", "mean"))


def vector_info(names: list[str], train: torch.Tensor) -> dict[str, Any]:
    """The ``info`` of a named-vector modality from its training vectors (N, D): names, mean,
    covariance (for the conditional base of partial specifications) and per-dimension range."""
    t = train.double()
    return {"names": list(names), "mean": train.float().mean(0).tolist(),
            "cov": torch.cov(t.T).reshape(len(names), len(names)).tolist(),
            "min": t.min(0).values.tolist(), "max": t.max(0).values.tolist()}
