"""Diagonal Gaussians in the exact forms the paper's eqs. 7-8 abbreviate.

The paper writes the variance as ``exp(f_sigma)`` (so ``f_sigma`` is a log-variance) and, in eq. 8,
drops the constant ``-1/2 log 2 pi`` and writes ``exp(g_sigma)`` where the Gaussian density has
``g_sigma / 2``. cmmkit uses the exact log-density and KL, so reported bounds are true bounds in
nats and comparable with importance-sampled and Parzen estimates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cmmkit.modality import Code

LOG_2PI = math.log(2 * math.pi)


def _float32(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Half and bf16 tensors (a network's outputs under ``train.speed.autocast``) as float32: the
    exponentials and the sums over thousands of dimensions that form a bound lose nats in bf16."""
    return tuple(t.float() if t.is_floating_point() and t.element_size() < 4 else t for t in tensors)


def gaussian_log_prob(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, event_dims: int) -> torch.Tensor:
    """log N(x; mu, diag(exp(logvar))), summed over the last ``event_dims`` dimensions (exact form of eq. 8)."""
    x, mu, logvar = _float32(x, mu, logvar)
    # the constant is added once per event, not per element: one full-size op fewer in the hot path
    lp = -0.5 * (logvar + (x - mu).square() * torch.exp(-logvar))
    if not event_dims:
        return lp - 0.5 * LOG_2PI
    event_size = math.prod(lp.shape[lp.dim() - event_dims:])
    return lp.flatten(start_dim=lp.dim() - event_dims).sum(-1) - 0.5 * LOG_2PI * event_size


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor,
                event_dims: int = 1, mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(N(mu_q, e^logvar_q) || N(mu_p, e^logvar_p)) summed over the last ``event_dims`` dimensions
    (eq. 7 with its 1/2 and -1); positions where ``mask`` (the shape of the leading event dimensions
    but the last) is False contribute nothing.

    Eq. 7 as printed omits the constant ``-J/2``; it is included here so KL(q||q) == 0.
    """
    mu_q, logvar_q, mu_p, logvar_p = _float32(mu_q, logvar_q, mu_p, logvar_p)
    kl = 0.5 * (logvar_p - logvar_q + torch.exp(logvar_q - logvar_p)
                + (mu_q - mu_p).pow(2) * torch.exp(-logvar_p) - 1.0)
    return _event_sum(kl, event_dims, mask)


def _event_sum(elementwise: torch.Tensor, event_dims: int, mask: torch.Tensor | None) -> torch.Tensor:
    """Sum over the last ``event_dims`` dimensions; a position mask (B, *S) zeroes padded positions
    of a structured latent (B, *S, D) first, as pyro masks its ELBO terms."""
    if mask is not None:
        elementwise = elementwise * mask.unsqueeze(-1).to(elementwise.dtype)
    if not event_dims:
        return elementwise
    return elementwise.flatten(start_dim=elementwise.dim() - event_dims).sum(-1)


@dataclass
class DiagonalGaussian:
    """A batch of diagonal Gaussians; the last ``event_dims`` dimensions form one event.

    A structured latent has positions: ``mu`` of shape (B, *S, D) with ``event_dims = len(S) + 1``
    and an optional boolean ``mask`` of shape (B, *S) (True = a real position, e.g. a source token;
    False = padding). :meth:`log_prob` and :meth:`kl` then sum over D and over the unmasked positions,
    so they always come back per example, shape (B,), whatever the latent's shape. The flat latent
    of the paper is the case S = (): ``mu`` (B, D), ``event_dims = 1``, no mask.
    """

    mu: torch.Tensor
    logvar: torch.Tensor
    event_dims: int = 1
    mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.mask is not None and tuple(self.mask.shape) != tuple(self.mu.shape[:-1]):
            raise ValueError(f"mask of shape {tuple(self.mask.shape)} does not fit a Gaussian of shape "
                             f"{tuple(self.mu.shape)}: expected {tuple(self.mu.shape[:-1])} (one flag per position)")

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    @property
    def mean(self) -> torch.Tensor:
        return self.mu

    @property
    def positions(self) -> tuple[int, ...]:
        """The latent's position shape S (empty for a flat vector latent)."""
        return tuple(self.mu.shape[1:-1]) if self.event_dims > 1 else ()

    def rsample(self, noise_scale: float = 1.0) -> torch.Tensor:
        """Reparameterized sample mu + eps * sigma (eqs. 9-10); ``noise_scale=0`` returns the mean."""
        if noise_scale == 0.0:
            return self.mu
        return self.mu + noise_scale * torch.randn_like(self.mu) * self.std

    def sample_code(self, noise_scale: float = 1.0) -> torch.Tensor | Code:
        """:meth:`rsample` as a decoder reads it: a flat (B, D) tensor, or a :class:`~cmmkit.modality.Code`
        carrying this latent's positions and mask."""
        z = self.rsample(noise_scale)
        return Code(z, self.mask) if self.event_dims > 1 else z

    def log_prob(self, x: torch.Tensor | Code) -> torch.Tensor:
        if isinstance(x, Code):
            x = x.features
        if self.mask is None:
            return gaussian_log_prob(x, self.mu, self.logvar, self.event_dims)
        x, mu, logvar = _float32(x, self.mu, self.logvar)
        lp = -0.5 * (logvar + (x - mu).square() * torch.exp(-logvar) + LOG_2PI)
        return _event_sum(lp, self.event_dims, self.mask)

    def kl(self, other: DiagonalGaussian) -> torch.Tensor:
        """KL(self || other) per example (B,), masked by this distribution's positions."""
        if self.mu.shape != other.mu.shape:
            raise ValueError(f"KL between Gaussians of shapes {tuple(self.mu.shape)} and {tuple(other.mu.shape)}")
        return gaussian_kl(self.mu, self.logvar, other.mu, other.logvar, self.event_dims, self.mask)

    def tile(self, n: int) -> DiagonalGaussian:
        """The batch repeated ``n`` times along dim 0 ([a, b] -> [a, b, a, b]), mask included."""
        def rep(t: torch.Tensor) -> torch.Tensor:
            return t.repeat(n, *([1] * (t.dim() - 1)))

        return DiagonalGaussian(rep(self.mu), rep(self.logvar), self.event_dims,
                                None if self.mask is None else rep(self.mask))


def standard_normal_like(mu: torch.Tensor, mask: torch.Tensor | None = None) -> DiagonalGaussian:
    """N(0, I) with the shape of ``mu`` (the fixed prior of a VAE/CVAE, eq. 13), over ``mask``'s positions."""
    return DiagonalGaussian(torch.zeros_like(mu), torch.zeros_like(mu), mu.dim() - 1, mask)
