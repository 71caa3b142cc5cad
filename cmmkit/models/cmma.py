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
from cmmkit.errors import ConfigError
from cmmkit.modality import Code, Modality, Value
from cmmkit.models.latent import (
    LOGVAR_MAX,
    LOGVAR_MIN,
    GaussianHead,
    LatentConfig,
    LatentModel,
    PosteriorFeatures,
    ResidualGaussianHead,
)


class CMMAConfig(LatentConfig):
    name: Literal["cmma"] = "cmma"
    prior_hidden: int = Field(800, ge=1, description="hidden softplus units of f (800 in the paper)")
    posterior: Literal["xy", "x"] = Field("xy", description="h reads (x, y) (§2.2) or x alone (eqs. 4-6)")
    y_surrogate_weight: float = Field(1.0, ge=0.0, description="weight of E_p(z|y) log q(y|z); 0 disables h2")
    residual_posterior: bool = Field(False, description="h gives q(z | x, y) as p(z | y) plus a correction that "
                                     "starts at zero (needs posterior=xy); against posterior collapse with "
                                     "autoregressive decoders")
    share_y_encoder: bool = Field(False, description="h reads y through f's own encoder (y encoded once per step, "
                                  "shared by p and q) instead of a separate encoder of posterior_y_hidden")
    prior_logvar_max: float = Field(LOGVAR_MAX, ge=LOGVAR_MIN, le=LOGVAR_MAX, description="soft upper limit of f's log "
                                    "sigma^2; a low limit keeps the noise of z from drowning y's signal")

    @model_validator(mode="after")
    def _residual_needs_y(self) -> CMMAConfig:
        if self.residual_posterior and self.posterior != "xy":
            raise ValueError("residual_posterior=true needs posterior=xy: q(z | x) alone cannot be given "
                             "relative to p(z | y)")
        if self.share_y_encoder and self.posterior != "xy":
            raise ValueError("share_y_encoder=true needs posterior=xy: with posterior=x, h does not read y")
        return self


class CMMA(LatentModel):
    name = "cmma"
    Config = CMMAConfig
    can_edit = True
    config: CMMAConfig

    def __init__(self, config: CMMAConfig, x: Modality, y: Modality) -> None:
        super().__init__(config, x, y)
        c = config
        if y.positional and c.posterior == "x":
            raise ConfigError(f"model.posterior=x cannot be used with a {y.name} condition: the latent has one "
                              "Gaussian per position of y, and q(z | x) cannot know y's positions; use posterior=xy")
        self.prior_net = nn.Sequential(y.encoder(c.prior_hidden),
                                       GaussianHead(c.prior_hidden, c.latent_dim, c.logvar_init, c.prior_logvar_max))
        self.x_encoder = x.encoder(c.posterior_hidden)
        self.y_encoder = y.encoder(c.posterior_y_hidden) if c.posterior == "xy" and not c.share_y_encoder else None
        y_features = 0 if c.posterior == "x" else c.prior_hidden if c.share_y_encoder else c.posterior_y_hidden
        self.posterior_features = PosteriorFeatures(c.posterior_hidden, y_features, x.positional, y.positional)
        features = self.posterior_features.out_features
        self.posterior_head = (ResidualGaussianHead(features, c.latent_dim) if c.residual_posterior
                               else GaussianHead(features, c.latent_dim, c.logvar_init))
        self.decoder = x.decoder(c.latent_dim)
        self.y_decoder = y.decoder(c.latent_dim) if c.y_surrogate_weight > 0 else None

    def prior(self, y: Value) -> DiagonalGaussian:
        return self.prior_net(y)

    def posterior(self, x: Value, y: Value) -> DiagonalGaussian:
        if self.config.residual_posterior or self.config.share_y_encoder:
            return self.posterior_and_prior(x, y)[0]
        return self._posterior(x, y)

    def posterior_and_prior(self, x: Value, y: Value) -> tuple[DiagonalGaussian, DiagonalGaussian]:
        """q and p from one pass of f: y is encoded once (h reads f's code of y with
        ``share_y_encoder``) and the residual posterior is built on that very p."""
        y_code = self.prior_net[0](y)
        p = self.prior_net[1](y_code)
        return self._posterior(x, y, p, y_code if self.config.share_y_encoder else None), p

    def _posterior(self, x: Value, y: Value, prior: DiagonalGaussian | None = None,
                   y_code: torch.Tensor | None = None) -> DiagonalGaussian:
        if self.config.posterior == "xy" and y_code is None:
            y_code = self.y_encoder(y)
        feats = self.posterior_features(self.x_encoder(x), y_code)
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
        """Steps 1-4 of §4.5 on prepared values: mu_h(x, y_new) + (mu_f(y_new) - mu_f(y_orig))."""
        q_new, p_new = self.posterior_and_prior(x, y_new)
        p_orig = self.prior(y_orig)
        if p_orig.mu.shape != p_new.mu.shape or (p_orig.mask is not None and not torch.equal(p_orig.mask, p_new.mask)):
            raise ConfigError(f"cannot edit: the latent of the original condition has positions "
                              f"{p_orig.positions or '()'} and the new one's {p_new.positions or '()'}; §4.5's "
                              "edit moves z by f(y_new) - f(y_orig) position by position, so both conditions must "
                              "have the same positions (e.g. sentences of the same token length)")
        return _with_mask(q_new.mean + (p_new.mean - p_orig.mean), p_new)

    @torch.no_grad()
    def edit(self, x: Value, y_orig: Value, y_new: Value) -> Value:
        """The five steps of §4.5: step 5 decodes the edited latent with g at noise 0."""
        return self.decoder.generate(self.edit_latent(x, y_orig, y_new), 0.0)

    @property
    def can_infer(self) -> bool:
        # posterior "x", not "no y_encoder": with share_y_encoder an (x, y) posterior has none either
        return self.y_decoder is not None and self.config.posterior == "x"

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
        z = self.posterior(x, None).mean
        return self.y_decoder.generate(z, 0.0)


def _with_mask(z: torch.Tensor, like: DiagonalGaussian) -> torch.Tensor | Code:
    """A latent value as the decoder reads it, with the positions and mask of ``like``."""
    return Code(z, like.mask) if like.event_dims > 1 else z
