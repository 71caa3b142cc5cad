"""Shared code of the latent-variable models (CMMA, CVAE, VAE): one loss, one evaluation.

A subclass only defines its networks through ``prior``, ``posterior`` and ``decode``; the bound
(``cmmkit.bound.elbo``) turns them into eq. 6 (CMMA) or eq. 13 (CVAE, VAE), so no model carries its
own copy of the loss.
"""

from __future__ import annotations

from abc import abstractmethod
import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from cmmkit import bound
from cmmkit.distributions import DiagonalGaussian
from cmmkit.modality import Decoder, Value
from cmmkit.models.base import ConditionalModel, ModelConfig


LOGVAR_MIN, LOGVAR_MAX = -12.0, 6.0


class LatentConfig(ModelConfig):
    latent_dim: int = Field(500, ge=1, description="size of z (500 in the paper)")
    posterior_hidden: int = Field(512, ge=1, description="features of x fed to the posterior heads")
    posterior_y_hidden: int = Field(256, ge=1, description="features of y fed to the posterior heads")
    logvar_init: float = Field(0.0, ge=LOGVAR_MIN, le=LOGVAR_MAX, description="initial log sigma^2 of the latent Gaussians "
                               "(their heads' bias); below 0 z starts close to its mean")


def soft_clamp_logvar(raw: torch.Tensor, high: float = LOGVAR_MAX) -> torch.Tensor:
    """Softly keep a log-variance in [LOGVAR_MIN, high] (identity in between): with Adagrad's
    large first steps an unbounded linear log-variance can jump to hundreds and turn the closed-form
    KL (eq. 7) into inf within a few batches."""
    return LOGVAR_MIN + F.softplus(raw - LOGVAR_MIN) - F.softplus(raw - high)


class GaussianHead(nn.Module):
    """Two parallel linear layers giving (mu, log sigma^2) of a diagonal Gaussian; the log-variance
    starts near ``logvar_init`` (its bias) and is soft-clamped by :func:`soft_clamp_logvar`."""

    def __init__(self, in_features: int, out_features: int, logvar_init: float = 0.0,
                 logvar_max: float = LOGVAR_MAX) -> None:
        super().__init__()
        self.mu = nn.Linear(in_features, out_features)
        self.logvar = nn.Linear(in_features, out_features)
        self.logvar_max = logvar_max
        if logvar_init:
            nn.init.constant_(self.logvar.bias, logvar_init)

    def forward(self, h: torch.Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(self.mu(h), soft_clamp_logvar(self.logvar(h), self.logvar_max))


class ResidualGaussianHead(nn.Module):
    """q given relative to a reference Gaussian p, in p's own units: mu_q = mu_p + sigma_p * dmu(h),
    log sigma_q^2 = log sigma_p^2 + dlogvar(h), both corrections starting at exactly zero (after
    NVAE's residual posterior, with the mean shift scaled by sigma_p).

    Why: q starts equal to p, so a z drawn from q is a draw of p(z | y) and the decoder reads y through
    z from the first step instead of learning to ignore a latent that carries nothing (posterior
    collapse, seen on translation). Scaling by sigma_p makes KL(q || p) = 1/2 sum(dmu^2 + e^dlogvar -
    dlogvar - 1), free of p: an unscaled shift costs dmu^2 / sigma_p^2, so Adam's first step on the
    zero-initialised heads already cost thousands of nats with a small prior variance and the KL's
    gradient then pushed f's variance up and flattened its mean. The family of q is unchanged: any
    Gaussian q(z | x, y) is reachable.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.mu = nn.Linear(in_features, out_features)
        self.logvar = nn.Linear(in_features, out_features)
        for layer in (self.mu, self.logvar):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, h: torch.Tensor, reference: DiagonalGaussian) -> DiagonalGaussian:
        # hard clamp: p's log-variance is already soft-clamped, and q must equal p exactly at the start
        logvar = (reference.logvar + self.logvar(h)).clamp(LOGVAR_MIN, LOGVAR_MAX)
        return DiagonalGaussian(reference.mu + reference.std * self.mu(h), logvar)


class LatentModel(ConditionalModel):
    """p(x | y) = ∫ p(x | z[, y]) p(z | y) dz with an amortised Gaussian posterior."""

    config: LatentConfig
    decoder: Decoder

    @abstractmethod
    def prior(self, y: Value) -> DiagonalGaussian:
        """p(z | y): CMMA's f network, or N(0, I) for a CVAE/VAE."""

    @abstractmethod
    def posterior(self, x: Value, y: Value) -> DiagonalGaussian:
        """q(z | x, y) (or q(z | x))."""

    def decoder_input(self, z: torch.Tensor, y: Value) -> torch.Tensor:
        """What the decoder g reads: z for CMMA/VAE, (z, y) for a CVAE."""
        return z

    def log_likelihood(self, z: torch.Tensor, x: Value, y: Value) -> torch.Tensor:
        return self.decoder.log_prob(self.decoder_input(z, y), x)

    def extra_loss(self, prepared: dict[str, Value], terms: bound.BoundTerms
                   ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """A term added to the loss besides -ELBO (CMMA's log p(y) surrogate); none by default."""
        return None, {}

    # --- trainer contract -----------------------------------------------------------------
    def training_loss(self, batch: dict[str, Value], group: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        prepared = self.prepare(batch)
        terms = bound.elbo(self, prepared)
        loss = -terms.elbo.mean()
        logs = {"bound": terms.elbo.mean().detach(), "kl": terms.kl.mean().detach()}
        extra, extra_logs = self.extra_loss(prepared, terms)
        if extra is not None:
            loss = loss + extra
        return loss, {**logs, **extra_logs}

    @torch.no_grad()
    def evaluate(self, batch: dict[str, Value]) -> dict[str, torch.Tensor]:
        terms = bound.elbo(self, self.prepare(batch))
        return {"bound": terms.elbo, "kl": terms.kl, "log_likelihood": terms.log_likelihood}

    @torch.no_grad()
    def generate(self, y: Value, noise_scale: float = 0.0, output_noise: float | None = None) -> Value:
        """z from the prior (its mean when ``noise_scale=0``), then g (Fig. 7 for CMMA)."""
        yp = self.y.prepare(y, dequantize=False)
        z = self.prior(yp).rsample(noise_scale)
        return self.decoder.generate(self.decoder_input(z, yp), noise_scale if output_noise is None else output_noise)

    @torch.no_grad()
    def encode(self, x: Value, y: Value) -> DiagonalGaussian:
        """q(z | x, y) for raw values (no dequantization noise): for editing and latent plots."""
        return self.posterior(self.x.prepare(x, dequantize=False), self.y.prepare(y, dequantize=False))
