"""The variational bounds and the importance-sampled likelihood, as functions of (model, batch).

One set of functions serves every latent-variable model. A model provides three methods:

- ``posterior(x, y)`` -> q(z | x, y) (or q(z | x) for the x-only posterior of eqs. 4-6),
- ``prior(y)`` -> p(z | y) (CMMA's f network; N(0, I) for a CVAE or VAE),
- ``log_likelihood(z, x, y)`` -> log p(x | z) (CMMA) or log p(x | y, z) (CVAE), shape (B,).

and may provide ``posterior_and_prior(x, y)`` -> (q, p) when q is built from p (CMMA's residual
posterior): both must then come from one forward pass of f, since two passes differ by dropout and
the KL between them would be noise divided by the prior's variance.

The bound is then eq. 6 for CMMA and eq. 13 for a CVAE:
``L = E_q log p(x | z[, y]) - KL(q || p(z | y))``, with one reparameterized sample per example
(§2.3) and the KL in closed form (eq. 7, exact form). This module owns no parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from cmmkit.distributions import DiagonalGaussian


@dataclass
class BoundTerms:
    log_likelihood: torch.Tensor  # (B,) E_q log p(x | z), one-sample estimate
    kl: torch.Tensor  # (B,) KL(q(z|x,y) || p(z|y)), closed form
    prior: DiagonalGaussian  # p(z | y), kept so the log p(y) surrogate does not recompute it

    @property
    def elbo(self) -> torch.Tensor:
        return self.log_likelihood - self.kl


def posterior_and_prior(model: Any, x: Any, y: Any) -> tuple[DiagonalGaussian, DiagonalGaussian]:
    """(q(z | x, y), p(z | y)): the model's joint method when it has one, else the two calls."""
    joint = getattr(model, "posterior_and_prior", None)
    return joint(x, y) if joint is not None else (model.posterior(x, y), model.prior(y))


def elbo(model: Any, batch: dict[str, Any], noise_scale: float = 1.0) -> BoundTerms:
    """Eq. 6 (CMMA) / eq. 13 (CVAE) per example on a prepared batch."""
    x, y = batch["x"], batch["y"]
    q, p = posterior_and_prior(model, x, y)
    z = q.sample_code(noise_scale)
    return BoundTerms(model.log_likelihood(z, x, y), q.kl(p), p)


def y_surrogate(model: Any, batch: dict[str, Any], prior: DiagonalGaussian | None = None) -> torch.Tensor:
    """E_{p(z|y)} log q(y|z) of §2.1, the stand-in for log p(y) (one sample), shape (B,).
    Pass ``prior`` (e.g. ``BoundTerms.prior``) to reuse an already computed p(z | y)."""
    y = batch["y"]
    z = (prior if prior is not None else model.prior(y)).sample_code()
    return model.y_decoder.log_prob(z, y)


@torch.no_grad()
def importance_log_likelihood(model: Any, batch: dict[str, Any], k: int, chunk: int = 100) -> torch.Tensor:
    """log p(x | y) ~= logsumexp_k [log p(x|z_k) + log p(z_k|y) - log q(z_k|x,y)] - log K, z_k ~ q.

    A consistent estimator whose expectation is a lower bound that tightens as K grows (Burda et
    al. 2016); with K = 1 it is the ELBO. Samples are drawn ``chunk`` at a time so memory stays
    bounded for large K. Returns shape (B,).
    """
    x, y = batch["x"], batch["y"]
    q, p = posterior_and_prior(model, x, y)
    weights = []
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        # n samples for every example at once: rows are [sample 0 of all examples, sample 1, ...]
        qn, pn = q.tile(n), p.tile(n)
        z = qn.sample_code()
        w = model.log_likelihood(z, _tile(x, n), _tile(y, n)) + pn.log_prob(z) - qn.log_prob(z)
        weights.append(w.view(n, -1))
    return torch.logsumexp(torch.cat(weights), dim=0) - math.log(k)


def _tile(value: Any, n: int) -> Any:
    """Repeat a batch value n times along the batch dimension (tensors or dicts of tensors)."""
    if isinstance(value, dict):
        return {key: _tile(v, n) for key, v in value.items()}
    return value.repeat(n, *([1] * (value.dim() - 1)))


def bits_per_dim(nats: torch.Tensor | float, dims: int, discrete_log_offset: float) -> float:
    """Convert a (continuous, dequantized) log-likelihood in nats per example to bits per
    dimension of the discrete data: -(nats + offset) / (dims * ln 2)."""
    return float(-(float(nats) + discrete_log_offset) / (dims * math.log(2.0)))
