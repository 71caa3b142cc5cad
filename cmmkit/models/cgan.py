"""The conditional GAN baseline (§4.2-4.3): generator g(noise, y), discriminator D(x, y).

"The generator and discriminator of CGAN ... closely mimic the MLPs g and h of CMMA": the
generator is the x modality's decoder (its mean is the generated x) reading (noise, y features);
the discriminator reads x with the x modality's encoder and y with the y modality's encoder, like
CMMA's h, and ends in one logit. The model owns its training step (:meth:`CGAN.train_step`): the
batch arrives prepared once, the fakes are built once, then D takes its step on them (detached)
and G its step through them, so the one trainer trains it; ``train.group_optimizers.{discriminator,
generator}`` set the two optimizers' learning rates.

The discriminator must see x and y *jointly*: a logit that is a sum a(x) + b(y) (a linear layer on
concatenated features) ranks a face the same under every y, so it cannot tell a matching pair
from a mismatched one and the generator gets no signal to follow y. Two joint heads:

- ``projection`` (default; Miyato & Koyama 2018, eq. 3): D(x, y) = psi(phi(x)) + <V e(y), phi(x)>,
  phi = the x encoder, e = the y encoder, psi and V linear;
- ``hidden`` (Mirza & Osindero 2014): x and y features concatenated into a hidden layer, then
  the logit, so y enters the discriminator's hidden units.

A joint head can read y, but the GAN loss alone gives it no reason to while the generator's
fakes are easy to spot from x alone (on a synthetic problem D never did, and G ignored y). So by
default D is also shown real x under another example's y as fake (``mismatch_weight``, the
matching-aware discriminator of Reed et al. 2016, GAN-CLS); 0 gives the plain CGAN loss.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from cmmkit.modality import Modality, Value, batch_size, select
from cmmkit.models.base import ConditionalModel, ModelConfig

if TYPE_CHECKING:
    from cmmkit.training.step import StepOptimizers

log = logging.getLogger(__name__)


class CGANConfig(ModelConfig):
    name: Literal["cgan"] = "cgan"
    noise_dim: int = Field(100, ge=1, description="size of the generator's noise input")
    generator_y_hidden: int = Field(256, ge=1, description="features of y fed to the generator")
    discriminator_hidden: int = Field(512, ge=1, description="features of x in the discriminator")
    discriminator_y_hidden: int = Field(256, ge=1, description="features of y in the discriminator")
    discriminator: Literal["projection", "hidden"] = Field(
        "projection", description="how D joins x and y: projection (Miyato & Koyama 2018) or a joint hidden "
                                  "layer (Mirza & Osindero 2014)")
    joint_hidden: int = Field(512, ge=1, description="units of the joint hidden layer (discriminator=hidden)")
    mismatch_weight: float = Field(0.5, ge=0, le=1, description=(
        "share of D's 'fake' term given to real x under another example's y (matching-aware D, Reed et al. "
        "2016): teaches D to read y before the generator's faces are realistic; 0 is the plain CGAN"))
    spectral_norm: bool = Field(False, description="spectral normalisation of D's layers (Miyato et al. 2018), "
                                                   "which keeps D from overpowering G early")
    init_std: float | None = Field(0.02, gt=0, description="std of the initial weights (None: PyTorch's default)")


class CGAN(ConditionalModel):
    name = "cgan"
    Config = CGANConfig
    config: CGANConfig
    # what a checkpoint of the additive discriminator (cmmkit before the joint heads) holds
    LEGACY_KEYS = frozenset({"d_out.weight", "d_out.bias"})

    def __init__(self, config: CGANConfig, x: Modality, y: Modality) -> None:
        super().__init__(config, x, y)
        c = config
        self.generator_y = y.encoder(c.generator_y_hidden)
        self.generator = x.decoder(c.noise_dim + c.generator_y_hidden)
        self.d_x = x.encoder(c.discriminator_hidden)
        self.d_y = y.encoder(c.discriminator_y_hidden)
        self.d_head = self._head(c)
        if c.init_std is not None:
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.normal_(m.weight, 0.0, c.init_std)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        if c.spectral_norm:
            for net in (self.d_x, self.d_y, self.d_head):
                for m in list(net.modules()):
                    if isinstance(m, (nn.Linear, nn.Conv2d)):
                        nn.utils.parametrizations.spectral_norm(m)
        elif c.discriminator == "projection":
            # start as an unconditional D; the projection grows from zero (its gradient phi e^T is not zero)
            nn.init.zeros_(self.d_head["embed"].weight)

    @staticmethod
    def _head(c: CGANConfig) -> nn.ModuleDict:
        if c.discriminator == "projection":
            return nn.ModuleDict({"psi": nn.Linear(c.discriminator_hidden, 1),
                                  "embed": nn.Linear(c.discriminator_y_hidden, c.discriminator_hidden, bias=False)})
        return nn.ModuleDict({"joint": nn.Sequential(
            nn.Linear(c.discriminator_hidden + c.discriminator_y_hidden, c.joint_hidden), nn.LeakyReLU(0.2),
            nn.Linear(c.joint_hidden, 1))})

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        d = [*self.d_x.parameters(), *self.d_y.parameters(), *self.d_head.parameters()]
        g = [*self.generator_y.parameters(), *self.generator.parameters()]
        return {"discriminator": d, "generator": g}

    def incompatible_weights(self, weights: dict[str, torch.Tensor]) -> str | None:
        """Why saved ``weights`` cannot load here, when they are an old additive-discriminator CGAN."""
        if self.LEGACY_KEYS <= set(weights):
            return ("a CGAN with the old additive discriminator (d_out on concatenated x and y features: its "
                    "logit a(x) + b(y) cannot tell a matching pair from a mismatched one, so its generator never "
                    "learnt to follow y); this cmmkit's discriminator sees x and y jointly. Retrain the run "
                    "with `cmmkit train --model cgan`")
        return None

    def discriminate(self, x: Value, y: Value) -> torch.Tensor:
        """D's logit for each pair (x_i, y_i), shape (B,)."""
        return self._logit(self.d_x(x), self.d_y(y))

    def _logit(self, phi: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        if self.config.discriminator == "projection":
            return self.d_head["psi"](phi).squeeze(-1) + (self.d_head["embed"](e) * phi).sum(-1)
        return self.d_head["joint"](torch.cat([phi, e], dim=-1)).squeeze(-1)

    def _fake(self, y: Value, noise_scale: float = 1.0) -> Value:
        device = next(self.generator.parameters()).device
        noise = torch.randn(batch_size(y), self.config.noise_dim, device=device) * noise_scale
        return self.generator.generate(torch.cat([noise, self.generator_y(y)], dim=-1), 0.0)

    def train_step(self, batch: dict[str, Value], optimizers: StepOptimizers) -> dict[str, torch.Tensor]:
        """One forward pass, two updates: the fakes G(noise, y) are built once; D steps on them
        (detached) against the real pairs, then G steps on D's updated opinion of the same fakes
        (non-saturating loss -log D(G(noise, y), y))."""
        x, y = batch["x"], batch["y"]
        fake = self._fake(y)
        d_loss, logs = self.discriminator_loss(x, y, fake.detach())
        optimizers["discriminator"].minimize(d_loss)
        g_loss = self.generator_loss(fake, y)
        optimizers["generator"].minimize(g_loss)
        return {"loss_discriminator": d_loss.detach(), **logs, "loss_generator": g_loss.detach()}

    def generator_loss(self, fake: Value, y: Value) -> torch.Tensor:
        """G's non-saturating loss -log D(fake, y), through D to the generator."""
        logit = self.discriminate(fake, y)
        return F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))

    def discriminator_loss(self, x: Value, y: Value, fake: Value) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's loss on real pairs (x, y), fakes (``fake``, y) and, with ``mismatch_weight``, real x
        under the next example's y, plus the mean probabilities D gives each (detached)."""
        phi, e = self.d_x(x), self.d_y(y)
        real_logit, fake_logit = self._logit(phi, e), self.discriminate(fake, y)
        w = self.config.mismatch_weight
        loss = (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
                + (1 - w) * F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))
        logs = {"d_real": torch.sigmoid(real_logit).mean().detach(),
                "d_fake": torch.sigmoid(fake_logit).mean().detach()}
        if w > 0:  # real x under the next example's y: a pair D must call fake
            wrong_logit = self._logit(phi, torch.roll(e, 1, dims=0))
            loss = loss + w * F.binary_cross_entropy_with_logits(wrong_logit, torch.zeros_like(wrong_logit))
            logs["d_mismatch"] = torch.sigmoid(wrong_logit).mean().detach()
        return loss, logs

    @torch.no_grad()
    def evaluate(self, batch: dict[str, Value]) -> dict[str, torch.Tensor]:
        """No likelihood bound exists for a GAN; report how the discriminator sees real and fake
        pairs, and real faces under another example's y (``d_mismatch``: low when D reads y)."""
        p = batch
        shifted = torch.roll(torch.arange(batch_size(p["y"]), device=p["x"].device), 1)
        return {"d_real": torch.sigmoid(self.discriminate(p["x"], p["y"])),
                "d_fake": torch.sigmoid(self.discriminate(self._fake(p["y"]), p["y"])),
                "d_mismatch": torch.sigmoid(self.discriminate(p["x"], select(p["y"], shifted)))}

    @torch.no_grad()
    def generate(self, y: Value, noise_scale: float = 0.0, output_noise: float | None = None) -> Value:
        """The generator's output for noise scaled by ``noise_scale`` (it has no output noise)."""
        return self._fake(y, noise_scale)

