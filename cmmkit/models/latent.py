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
from cmmkit.modality import Code, Decoder, Modality, Value, code_parts
from cmmkit.models.base import ConditionalModel, ModelConfig

LOGVAR_MIN, LOGVAR_MAX = -12.0, 6.0


class LatentConfig(ModelConfig):
    latent_dim: int = Field(500, ge=1, description="size of z (500 in the paper)")
    posterior_hidden: int = Field(512, ge=1, description="features of x fed to the posterior heads")
    posterior_y_hidden: int = Field(256, ge=1, description="features of y fed to the posterior heads")
    logvar_init: float = Field(0.0, ge=LOGVAR_MIN, le=LOGVAR_MAX, description="initial log sigma^2 of the latent Gaussians "
                               "(their heads' bias); below 0 z starts close to its mean")
    kl_warmup_steps: int = Field(0, ge=0, description="training only: the KL term's weight rises linearly from 0 "
                                 "to 1 over this many optimizer steps (Bowman et al. 2016), so the decoder learns "
                                 "to read z before the KL can switch it off; 0: the bound from the first step. "
                                 "Validation and evaluation always use the full bound")


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

    def forward(self, h: torch.Tensor | Code) -> DiagonalGaussian:
        """One Gaussian per example (flat h: (B, F) -> (B, D)) or per position (a Code (B, *S, F) ->
        a latent (B, *S, D) carrying the code's mask)."""
        feats, mask = code_parts(h)
        return DiagonalGaussian(self.mu(feats), soft_clamp_logvar(self.logvar(feats), self.logvar_max),
                                feats.dim() - 1, mask)


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

    def forward(self, h: torch.Tensor | Code, reference: DiagonalGaussian) -> DiagonalGaussian:
        feats, _ = code_parts(h)
        # hard clamp: p's log-variance is already soft-clamped, and q must equal p exactly at the start
        logvar = (reference.logvar + self.logvar(feats)).clamp(LOGVAR_MIN, LOGVAR_MAX)
        return DiagonalGaussian(reference.mu + reference.std * self.mu(feats), logvar, reference.event_dims,
                                reference.mask)


class PosteriorFeatures(nn.Module):
    """h's input: what x says, at the latent's positions, beside what y says there.

    The latent has the positions of y's code (p(z | y) gives one Gaussian per position of y), so h
    must describe x at those positions:
    - flat x, flat y (an image or spectrogram from attributes or words): the two feature vectors concatenated, as in §2.2;
    - positional x and y (translation): each y position attends over x's positions (one cross-
      attention layer with a residual connection and a feed-forward block), then concatenated with y's
      own features there;
    - flat x, positional y: x's vector is broadcast to every y position;
    - positional x, flat y: x's positions are averaged (masked) into one vector.
    Shapes decide, never the modality's kind. Without y (``posterior: x``) x's features are used
    alone and must be flat, since then the latent's positions cannot follow y's.
    """

    def __init__(self, x_features: int, y_features: int, x_positional: bool, y_positional: bool,
                 heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.attend = x_positional and y_positional
        self.out_features = x_features + y_features
        if self.attend:
            heads = heads if x_features % heads == 0 else 1
            self.query = nn.Linear(y_features, x_features)
            self.attention = nn.MultiheadAttention(x_features, heads, dropout=dropout, batch_first=True)
            self.norm1, self.norm2 = nn.LayerNorm(x_features), nn.LayerNorm(x_features)
            self.ff = nn.Sequential(nn.Linear(x_features, 2 * x_features), nn.GELU(), nn.Dropout(dropout),
                                    nn.Linear(2 * x_features, x_features))

    def forward(self, x_code: torch.Tensor | Code, y_code: torch.Tensor | Code | None) -> torch.Tensor | Code:
        xf, xm = code_parts(x_code)
        if y_code is None:
            return x_code
        yf, ym = code_parts(y_code)
        if self.attend:
            q = self.query(yf)
            pad = None if xm is None else ~xm
            att, _ = self.attention(q, xf, xf, key_padding_mask=pad, need_weights=False)
            h = self.norm1(q + att)
            h = self.norm2(h + self.ff(h))
            return Code(torch.cat([h, yf], dim=-1), ym)
        if xf.dim() > 2:  # positional x, flat y: masked mean over x's positions
            w = torch.ones(xf.shape[:-1], device=xf.device) if xm is None else xm.to(xf.dtype)
            xf = (xf * w.unsqueeze(-1)).flatten(1, -2).sum(1) / w.flatten(1).sum(1, keepdim=True).clamp_min(1.0)
        if yf.dim() > 2:  # flat x, positional y: broadcast x to every position
            xf = xf.view(xf.shape[0], *([1] * (yf.dim() - 2)), xf.shape[-1]).expand(*yf.shape[:-1], xf.shape[-1])
            return Code(torch.cat([xf, yf], dim=-1), ym)
        return torch.cat([xf, yf], dim=-1)


class LatentModel(ConditionalModel):
    """p(x | y) = ∫ p(x | z[, y]) p(z | y) dz with an amortised Gaussian posterior."""

    config: LatentConfig
    decoder: Decoder

    def __init__(self, config: LatentConfig, x: Modality, y: Modality) -> None:
        super().__init__(config, x, y)
        if config.kl_warmup_steps:  # a buffer, so a checkpoint resumes the warm-up where it stopped
            self.register_buffer("kl_warmup_done", torch.zeros((), dtype=torch.long))

    def kl_weight(self) -> torch.Tensor | float:
        """The KL term's weight in the training loss: 1, or the warm-up's linear ramp (a tensor on
        the buffer's device, so reading it costs no host sync inside the step)."""
        n = self.config.kl_warmup_steps
        return 1.0 if not n else (self.kl_warmup_done.float() / n).clamp(max=1.0)

    @abstractmethod
    def prior(self, y: Value) -> DiagonalGaussian:
        """p(z | y): CMMA's f network, or N(0, I) for a CVAE/VAE."""

    @abstractmethod
    def posterior(self, x: Value, y: Value) -> DiagonalGaussian:
        """q(z | x, y) (or q(z | x))."""

    def decoder_input(self, z: torch.Tensor | Code, y: Value) -> torch.Tensor | Code:
        """What the decoder g reads: z for CMMA/VAE, (z, y) for a CVAE. ``z`` is a flat sample or a
        :class:`Code` (a structured latent with its mask)."""
        return z

    def log_likelihood(self, z: torch.Tensor | Code, x: Value, y: Value) -> torch.Tensor:
        return self.decoder.log_prob(self.decoder_input(z, y), x)

    def extra_loss(self, prepared: dict[str, Value], terms: bound.BoundTerms
                   ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """A term added to the loss besides -ELBO (CMMA's log p(y) surrogate); none by default."""
        return None, {}

    # --- trainer contract (prepared values) ----------------------------------------------
    def training_loss(self, batch: dict[str, Value]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = bound.elbo(self, batch)
        logs = {"bound": terms.elbo.mean().detach(), "kl": terms.kl.mean().detach()}
        if self.config.kl_warmup_steps:
            weight = self.kl_weight()
            self.kl_warmup_done += 1
            logs["kl_weight"] = weight
            loss = -(terms.log_likelihood - weight * terms.kl).mean()
        else:
            loss = -terms.elbo.mean()
        extra, extra_logs = self.extra_loss(batch, terms)
        if extra is not None:
            loss = loss + extra
        return loss, {**logs, **extra_logs}

    @torch.no_grad()
    def evaluate(self, batch: dict[str, Value]) -> dict[str, torch.Tensor]:
        terms = bound.elbo(self, batch)
        return {"bound": terms.elbo, "kl": terms.kl, "log_likelihood": terms.log_likelihood}

    @torch.no_grad()
    def generate(self, y: Value, noise_scale: float = 0.0, output_noise: float | None = None) -> Value:
        """z from the prior (its mean when ``noise_scale=0``), then g (Fig. 7 for CMMA)."""
        p = self.prior(y)
        z = p.sample_code(noise_scale)
        return self.decoder.generate(self.decoder_input(z, y), noise_scale if output_noise is None else output_noise)

    @torch.no_grad()
    def encode(self, x: Value, y: Value) -> DiagonalGaussian:
        """q(z | x, y) of prepared values, without gradients: for editing and latent plots."""
        return self.posterior(x, y)
