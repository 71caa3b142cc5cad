"""The Conditional Multimodal Autoencoder (Pandey & Dukkipati, §2 and Fig. 3).

Networks (Table 1 and §4.1):
- f: y -> (mu, log sigma^2) of the prior p(z | y); one hidden layer of ``prior_hidden`` (800 in
  the paper) soft-thresholding units and two parallel linear outputs of ``latent_dim`` (500).
- h: (x, y) -> q(z | x, y) (§2.2-2.3), or x alone -> q(z | x) (eqs. 4-6) with ``posterior: x``.
- g: z -> p(x | z), owned by the x modality (a Gaussian for images).
- h2: z -> q(y | z), for the log p(y) surrogate E_{p(z|y)} log q(y|z) of §2.1; built when
  ``y_surrogate_weight > 0`` and kept for attribute inference.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from cmmkit import bound
from cmmkit.distributions import DiagonalGaussian
from cmmkit.modality import Modality, Value
from cmmkit.models.base import ConditionalModel, ModelConfig


class CMMAConfig(ModelConfig):
    name: Literal["cmma"] = "cmma"
    latent_dim: int = Field(500, ge=1, description="size of z (500 in the paper)")
    prior_hidden: int = Field(800, ge=1, description="hidden softplus units of f (800 in the paper)")
    posterior: Literal["xy", "x"] = Field("xy", description="h reads (x, y) (§2.2) or x alone (eqs. 4-6)")
    posterior_hidden: int = Field(512, ge=1, description="features of x fed to the posterior heads")
    posterior_y_hidden: int = Field(256, ge=1, description="features of y fed to the posterior heads")
    y_surrogate_weight: float = Field(1.0, ge=0.0, description="weight of E_p(z|y) log q(y|z); 0 disables h2")


class GaussianHead(nn.Module):
    """Two parallel linear layers giving (mu, log sigma^2) of a diagonal Gaussian.

    The log-variance is softly kept in [logvar_min, logvar_max] (identity in between): with
    Adagrad's large first steps an unbounded linear log-variance can jump to hundreds and turn the
    closed-form KL (eq. 7) into inf within a few batches.
    """

    def __init__(self, in_features: int, out_features: int, logvar_min: float = -12.0, logvar_max: float = 6.0) -> None:
        super().__init__()
        self.mu = nn.Linear(in_features, out_features)
        self.logvar = nn.Linear(in_features, out_features)
        self.logvar_min, self.logvar_max = logvar_min, logvar_max

    def forward(self, h: torch.Tensor) -> DiagonalGaussian:
        raw = self.logvar(h)
        logvar = self.logvar_min + F.softplus(raw - self.logvar_min) - F.softplus(raw - self.logvar_max)
        return DiagonalGaussian(self.mu(h), logvar)


class CMMA(ConditionalModel):
    name = "cmma"
    Config = CMMAConfig
    config: CMMAConfig

    def __init__(self, config: CMMAConfig, x: Modality, y: Modality) -> None:
        super().__init__(config, x, y)
        c = config
        self.prior_net = nn.Sequential(y.encoder(c.prior_hidden), GaussianHead(c.prior_hidden, c.latent_dim))
        self.x_encoder = x.encoder(c.posterior_hidden)
        self.y_encoder = y.encoder(c.posterior_y_hidden) if c.posterior == "xy" else None
        features = c.posterior_hidden + (c.posterior_y_hidden if self.y_encoder is not None else 0)
        self.posterior_head = GaussianHead(features, c.latent_dim)
        self.decoder = x.decoder(c.latent_dim)
        self.y_decoder = y.decoder(c.latent_dim) if c.y_surrogate_weight > 0 else None

    # --- the three methods the bound needs ------------------------------------------------
    def prior(self, y: Value) -> DiagonalGaussian:
        return self.prior_net(y)

    def posterior(self, x: Value, y: Value) -> DiagonalGaussian:
        feats = self.x_encoder(x)
        if self.y_encoder is not None:
            feats = torch.cat([feats, self.y_encoder(y)], dim=-1)
        return self.posterior_head(feats)

    def log_likelihood(self, z: torch.Tensor, x: Value, y: Value) -> torch.Tensor:
        return self.decoder.log_prob(z, x)

    # --- trainer contract -----------------------------------------------------------------
    def training_loss(self, batch: dict[str, Value], group: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        prepared = self.prepare(batch)
        terms = bound.elbo(self, prepared)
        loss = -terms.elbo.mean()
        logs = {"bound": terms.elbo.mean().detach(), "kl": terms.kl.mean().detach()}
        if self.y_decoder is not None:
            sur = bound.y_surrogate(self, prepared).mean()
            loss = loss - self.config.y_surrogate_weight * sur
            logs["log_q_y"] = sur.detach()
        return loss, logs

    @torch.no_grad()
    def evaluate(self, batch: dict[str, Value]) -> dict[str, torch.Tensor]:
        terms = bound.elbo(self, self.prepare(batch))
        return {"bound": terms.elbo, "kl": terms.kl, "log_likelihood": terms.log_likelihood}

    @torch.no_grad()
    def generate(self, y: Value, noise_scale: float = 0.0) -> Value:
        """Fig. 7: h removed, f connected in its place: z ~ p(z | y), then g."""
        z = self.prior(self.y.prepare(y, dequantize=False)).rsample(noise_scale)
        return self.decoder.generate(z, noise_scale)

    @torch.no_grad()
    def infer_y(self, x: Value) -> Value:
        """E[y] under q(y | z) with z the mean of q(z | x) (needs ``posterior: x`` and h2)."""
        if self.y_decoder is None or self.y_encoder is not None:
            raise ValueError("attribute inference needs posterior='x' and y_surrogate_weight > 0")
        z = self.posterior(self.x.prepare(x, dequantize=False), None).mean
        return self.y_decoder.generate(z, 0.0)
