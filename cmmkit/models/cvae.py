"""Baselines with a fixed N(0, I) prior: the conditional VAE of eq. 13 and a plain VAE.

§4.2: "the encoder and decoder of CVAE closely mimic the MLPs g and h of CMMA", so both reuse the
modalities' encoder and decoder exactly as CMMA does; the CVAE's decoder reads (z, y) where CMMA's
reads z, and its prior does not depend on y. The VAE ignores y entirely (needed for Fig. 4).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from cmmkit.distributions import DiagonalGaussian, standard_normal_like
from cmmkit.errors import ConfigError
from cmmkit.modality import Code, Modality, Value, batch_size, code_parts
from cmmkit.models.latent import GaussianHead, LatentConfig, LatentModel, PosteriorFeatures


class CVAEConfig(LatentConfig):
    name: Literal["cvae"] = "cvae"
    decoder_y_hidden: int = Field(256, ge=1, description="features of y concatenated to z for the decoder")


class CVAE(LatentModel):
    """q(z | x, y), p(z) = N(0, I), p(x | y, z) (eq. 13)."""

    name = "cvae"
    Config = CVAEConfig
    can_edit = True
    config: CVAEConfig

    def __init__(self, config: CVAEConfig, x: Modality, y: Modality) -> None:
        super().__init__(config, x, y)
        c = config
        self.x_encoder = x.encoder(c.posterior_hidden)
        self.y_encoder = y.encoder(c.posterior_y_hidden)
        self.posterior_features = PosteriorFeatures(c.posterior_hidden, c.posterior_y_hidden, x.positional,
                                                    y.positional)
        self.posterior_head = GaussianHead(self.posterior_features.out_features, c.latent_dim, c.logvar_init)
        self.decoder_y = y.encoder(c.decoder_y_hidden)
        self.decoder = x.decoder(c.latent_dim + c.decoder_y_hidden)

    def prior(self, y: Value) -> DiagonalGaussian:
        """N(0, I) at the positions of y's code (one vector per example for a flat y)."""
        if not self.y.positional:
            return _standard_normal(self, y)
        feats, mask = code_parts(self.decoder_y(y))
        return standard_normal_like(feats.new_zeros(*feats.shape[:-1], self.config.latent_dim), mask)

    def posterior(self, x: Value, y: Value) -> DiagonalGaussian:
        return self.posterior_head(self.posterior_features(self.x_encoder(x), self.y_encoder(y)))

    def posterior_and_prior(self, x: Value, y: Value) -> tuple[DiagonalGaussian, DiagonalGaussian]:
        """q and N(0, I) at q's own positions: the bound needs no extra encoding of y for the prior."""
        q = self.posterior(x, y)
        return q, standard_normal_like(torch.zeros_like(q.mu), q.mask)

    def decoder_input(self, z: torch.Tensor | Code, y: Value) -> torch.Tensor | Code:
        """(z, y): y's decoder features joined to z position by position (eq. 13's p(x | y, z))."""
        zf, mask = code_parts(z)
        yf, _ = code_parts(self.decoder_y(y))
        joined = torch.cat([zf, yf], dim=-1)
        return Code(joined, mask) if joined.dim() > 2 else joined

    @torch.no_grad()
    def edit(self, x: Value, y_orig: Value, y_new: Value) -> Value:
        """The CVAE counterpart of §4.5: z = mean of q(z | x, y_orig) (what the face is, given what
        it shows), then p(x | z, y_new) at noise 0 (the same face told to show y_new)."""
        q = self.posterior(x, y_orig)
        if self.y.positional and code_parts(self.decoder_y(y_new))[0].shape[:-1] != q.mu.shape[:-1]:
            raise ConfigError("cannot edit: the new condition's positions differ from the original's, and the "
                              "CVAE joins z to y position by position (use conditions of the same token length)")
        return self.decoder.generate(self.decoder_input(q.sample_code(0.0), y_new), 0.0)


class VAEConfig(LatentConfig):
    name: Literal["vae"] = "vae"


class VAE(LatentModel):
    """q(z | x), p(z) = N(0, I), p(x | z): no conditioning (generation ignores y)."""

    name = "vae"
    Config = VAEConfig
    edit_refusal = "cannot edit by changing y: it never sees y (it only reconstructs x)"
    config: VAEConfig

    def __init__(self, config: VAEConfig, x: Modality, y: Modality) -> None:
        super().__init__(config, x, y)
        if x.positional:
            raise ConfigError(f"model.name=vae cannot model a {x.name} x: its latent would have x's positions, "
                              "which generation from the prior cannot know; use cmma, cvae or direct")
        self.x_encoder = x.encoder(config.posterior_hidden)
        self.posterior_head = GaussianHead(config.posterior_hidden, config.latent_dim, config.logvar_init)
        self.decoder = x.decoder(config.latent_dim)

    def prior(self, y: Value) -> DiagonalGaussian:
        return _standard_normal(self, y)

    def posterior(self, x: Value, y: Value) -> DiagonalGaussian:
        return self.posterior_head(self.x_encoder(x))


def _standard_normal(model: LatentModel, y: Value) -> DiagonalGaussian:
    """p(z) = N(0, I), one row per example of y (eq. 13's prior)."""
    mu = torch.zeros(batch_size(y), model.config.latent_dim, device=next(model.parameters()).device)
    return standard_normal_like(mu)
