"""The Conditional Multimodal Autoencoder (Pandey & Dukkipati, §2 and Fig. 3).

Networks (Table 1 and §4.1):
- f: y -> (mu, log sigma^2) of the prior p(z | y); one hidden layer of ``prior_hidden`` (800 in
  the paper) soft-thresholding units and two parallel linear outputs of ``latent_dim`` (500).
- h: (x, y) -> q(z | x, y) (§2.2-2.3), or x alone -> q(z | x) (eqs. 4-6) with ``posterior: x``;
  with ``residual_posterior`` h gives q as p(z | y) plus a learned correction (same family of q).
- g: z -> p(x | z), owned by the x modality (a Gaussian for images).
- h2: z -> q(y | z), for the log p(y) surrogate E_{p(z|y)} log q(y|z) of §2.1; built when
  ``y_surrogate_weight > 0`` and kept for attribute inference.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from cmmkit import bound
from cmmkit.distributions import DiagonalGaussian
from cmmkit.modality import Modality, Value
from cmmkit.models.latent import LOGVAR_MAX, LOGVAR_MIN, GaussianHead, LatentConfig, LatentModel, ResidualGaussianHead


class CMMAConfig(LatentConfig):
    name: Literal["cmma"] = "cmma"
    prior_hidden: int = Field(800, ge=1, description="hidden softplus units of f (800 in the paper)")
    posterior: Literal["xy", "x"] = Field("xy", description="h reads (x, y) (§2.2) or x alone (eqs. 4-6)")
    y_surrogate_weight: float = Field(1.0, ge=0.0, description="weight of E_p(z|y) log q(y|z); 0 disables h2")
    residual_posterior: bool = Field(False, description="h gives q(z | x, y) as p(z | y) plus a correction that "
                                     "starts at zero (needs posterior=xy); against posterior collapse with "
                                     "autoregressive decoders")
    prior_logvar_max: float = Field(LOGVAR_MAX, ge=LOGVAR_MIN, le=LOGVAR_MAX, description="soft upper limit of f's log "
                                    "sigma^2; a low limit keeps the noise of z from drowning y's signal")

    @model_validator(mode="after")
    def _residual_needs_y(self) -> "CMMAConfig":
        if self.residual_posterior and self.posterior != "xy":
            raise ValueError("residual_posterior=true needs posterior=xy: q(z | x) alone cannot be given "
                             "relative to p(z | y)")
        return self


class CMMA(LatentModel):
    name = "cmma"
    Config = CMMAConfig
    can_edit = True
    config: CMMAConfig

    def __init__(self, config: CMMAConfig, x: Modality, y: Modality) -> None:
        super().__init__(config, x, y)
        c = config
        self.prior_net = nn.Sequential(y.encoder(c.prior_hidden),
                                       GaussianHead(c.prior_hidden, c.latent_dim, c.logvar_init, c.prior_logvar_max))
        self.x_encoder = x.encoder(c.posterior_hidden)
        self.y_encoder = y.encoder(c.posterior_y_hidden) if c.posterior == "xy" else None
        features = c.posterior_hidden + (c.posterior_y_hidden if self.y_encoder is not None else 0)
        self.posterior_head = (ResidualGaussianHead(features, c.latent_dim) if c.residual_posterior
                               else GaussianHead(features, c.latent_dim, c.logvar_init))
        self.decoder = x.decoder(c.latent_dim)
        self.y_decoder = y.decoder(c.latent_dim) if c.y_surrogate_weight > 0 else None

    def prior(self, y: Value) -> DiagonalGaussian:
        return self.prior_net(y)

    def posterior(self, x: Value, y: Value) -> DiagonalGaussian:
        return self.posterior_and_prior(x, y)[0] if self.config.residual_posterior else self._posterior(x, y)

    def posterior_and_prior(self, x: Value, y: Value) -> tuple[DiagonalGaussian, DiagonalGaussian]:
        """q and p from one pass of f (the residual posterior is built on that very p)."""
        p = self.prior(y)
        return self._posterior(x, y, p), p

    def _posterior(self, x: Value, y: Value, prior: DiagonalGaussian | None = None) -> DiagonalGaussian:
        feats = self.x_encoder(x)
        if self.y_encoder is not None:
            feats = torch.cat([feats, self.y_encoder(y)], dim=-1)
        if self.config.residual_posterior:
            return self.posterior_head(feats, prior)
        return self.posterior_head(feats)

    def extra_loss(self, prepared: dict[str, Value], terms: bound.BoundTerms
                   ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        if self.y_decoder is None:
            return None, {}
        sur = bound.y_surrogate(self, prepared, terms.prior).mean()
        return -self.config.y_surrogate_weight * sur, {"log_q_y": sur.detach()}

    @torch.no_grad()
    def edit_latent(self, x: Value, y_orig: Value, y_new: Value) -> torch.Tensor:
        """Steps 1-4 of §4.5 on raw values: mu_h(x, y_new) + (mu_f(y_new) - mu_f(y_orig))."""
        xp = self.x.prepare(x, dequantize=False)
        yo, yn = self.y.prepare(y_orig, dequantize=False), self.y.prepare(y_new, dequantize=False)
        return self.posterior(xp, yn).mean + (self.prior(yn).mean - self.prior(yo).mean)

    @torch.no_grad()
    def edit(self, x: Value, y_orig: Value, y_new: Value) -> Value:
        """The five steps of §4.5: step 5 decodes the edited latent with g at noise 0."""
        return self.decoder.generate(self.edit_latent(x, y_orig, y_new), 0.0)

    @property
    def can_infer(self) -> bool:
        return self.y_decoder is not None and self.y_encoder is None

    @torch.no_grad()
    def infer_y(self, x: Value) -> Value:
        """E[y] under q(y | z) with z the mean of q(z | x): §2.1's h2 read on the x-only posterior.
        Needs ``posterior: x`` (an (x, y) posterior cannot run without y) and h2."""
        from cmmkit.errors import ConfigError

        if not self.can_infer:
            raise ConfigError("this cmma run cannot infer y from x: that needs model.posterior=x and "
                              f"y_surrogate_weight > 0 (it has posterior={self.config.posterior!r}, "
                              f"y_surrogate_weight={self.config.y_surrogate_weight:g}); train one, or pass "
                              "such a run to infer with")
        z = self.posterior(self.x.prepare(x, dequantize=False), None).mean
        return self.y_decoder.generate(z, 0.0)
