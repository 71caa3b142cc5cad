"""The conditional GAN baseline (§4.2-4.3): generator g(noise, y), discriminator D(x, y).

"The generator and discriminator of CGAN ... closely mimic the MLPs g and h of CMMA": the
generator is the x modality's decoder (its mean is the generated x) reading (noise, y features);
the discriminator is the x modality's encoder plus a y encoder, like CMMA's h, ending in one
logit. The two alternating steps come from the model-side ``optimizer_groups`` hook, so the one
trainer trains it; ``train.group_optimizers.{discriminator,generator}`` set their learning rates.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from cmmkit.modality import Modality, Value, batch_size
from cmmkit.models.base import ConditionalModel, ModelConfig


class CGANConfig(ModelConfig):
    name: Literal["cgan"] = "cgan"
    noise_dim: int = Field(100, ge=1, description="size of the generator's noise input")
    generator_y_hidden: int = Field(256, ge=1, description="features of y fed to the generator")
    discriminator_hidden: int = Field(512, ge=1, description="features of x in the discriminator")
    discriminator_y_hidden: int = Field(256, ge=1, description="features of y in the discriminator")
    init_std: float | None = Field(0.02, gt=0, description="std of the initial weights (None: PyTorch's default)")


class CGAN(ConditionalModel):
    name = "cgan"
    Config = CGANConfig
    config: CGANConfig

    def __init__(self, config: CGANConfig, x: Modality, y: Modality) -> None:
        super().__init__(config, x, y)
        c = config
        self.generator_y = y.encoder(c.generator_y_hidden)
        self.generator = x.decoder(c.noise_dim + c.generator_y_hidden)
        self.d_x = x.encoder(c.discriminator_hidden)
        self.d_y = y.encoder(c.discriminator_y_hidden)
        self.d_out = nn.Linear(c.discriminator_hidden + c.discriminator_y_hidden, 1)
        if c.init_std is not None:
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.normal_(m.weight, 0.0, c.init_std)
                    nn.init.zeros_(m.bias)

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        d = [*self.d_x.parameters(), *self.d_y.parameters(), *self.d_out.parameters()]
        g = [*self.generator_y.parameters(), *self.generator.parameters()]
        return {"discriminator": d, "generator": g}

    def discriminate(self, x: Value, y: Value) -> torch.Tensor:
        return self.d_out(torch.cat([self.d_x(x), self.d_y(y)], dim=-1)).squeeze(-1)

    def _fake(self, y: Value, noise_scale: float = 1.0) -> Value:
        device = self.d_out.weight.device
        noise = torch.randn(batch_size(y), self.config.noise_dim, device=device) * noise_scale
        return self.generator.generate(torch.cat([noise, self.generator_y(y)], dim=-1), 0.0)

    def training_loss(self, batch: dict[str, Value], group: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p = self.prepare(batch)
        if group == "discriminator":
            with torch.no_grad():
                fake = self._fake(p["y"])
            real_logit, fake_logit = self.discriminate(p["x"], p["y"]), self.discriminate(fake, p["y"])
            loss = (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
                    + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))
            return loss, {"d_real": torch.sigmoid(real_logit).mean().detach(),
                          "d_fake": torch.sigmoid(fake_logit).mean().detach()}
        # non-saturating generator loss: -log D(G(noise, y), y)
        logit = self.discriminate(self._fake(p["y"]), p["y"])
        return F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit)), {}

    @torch.no_grad()
    def evaluate(self, batch: dict[str, Value]) -> dict[str, torch.Tensor]:
        """No likelihood bound exists for a GAN; report how the discriminator sees real and fake."""
        p = self.prepare(batch)
        return {"d_real": torch.sigmoid(self.discriminate(p["x"], p["y"])),
                "d_fake": torch.sigmoid(self.discriminate(self._fake(p["y"]), p["y"]))}

    @torch.no_grad()
    def generate(self, y: Value, noise_scale: float = 0.0, output_noise: float | None = None) -> Value:
        """The generator's output for noise scaled by ``noise_scale`` (it has no output noise)."""
        return self._fake(self.y.prepare(y, dequantize=False), noise_scale)
