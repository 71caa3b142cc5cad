"""A deterministic encoder-decoder: p(x | y) = g(c(y)), no latent variable.

Why: a latent-variable model is only worth its noise and KL term if it does at least as well as the
same networks trained by plain maximum likelihood. ``direct`` is that reference (for text, the usual
"seq2seq" translation model): the y modality's encoder, a linear code of ``code_dim`` (the size of
CMMA's latent z) and the x modality's decoder, exactly CMMA's generation path f_mu -> g without the
posterior. Its ``bound`` is the exact log-likelihood log p(x | y) (for a discrete x such as text; for
dequantized images it is the same continuous density CMMA's bound lower-bounds), so it is reported and
compared on the same scale. It works with any modality pair.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from cmmkit.modality import Code, Modality, Value, code_parts
from cmmkit.models.base import ConditionalModel, ModelConfig


class _CodeLinear(nn.Linear):
    """A linear map of a code's features, position by position (keeps a Code's mask)."""

    def forward(self, code: torch.Tensor | Code) -> torch.Tensor | Code:  # type: ignore[override]
        feats, mask = code_parts(code)
        out = super().forward(feats)
        return Code(out, mask) if isinstance(code, Code) else out


class DirectConfig(ModelConfig):
    name: Literal["direct"] = "direct"
    hidden: int = Field(800, ge=1, description="features of y from its encoder (CMMA's prior_hidden)")
    code_dim: int = Field(500, ge=1, description="size of the code the decoder reads (CMMA's latent_dim)")


class Direct(ConditionalModel):
    """x = g(W e(y) + b): trained by maximising log p(x | y); generation decodes the code at noise 0."""

    name = "direct"
    Config = DirectConfig
    config: DirectConfig

    def __init__(self, config: DirectConfig, x: Modality, y: Modality) -> None:
        super().__init__(config, x, y)
        self.encoder = nn.Sequential(y.encoder(config.hidden), _CodeLinear(config.hidden, config.code_dim))
        self.decoder = x.decoder(config.code_dim)

    def code(self, y: Value) -> torch.Tensor | Code:
        """The decoder's input for a prepared y: a flat code, or one per position of y (with y's mask),
        the shape CMMA's structured latent has."""
        return self.encoder(y)

    def log_likelihood(self, batch: dict[str, Value]) -> torch.Tensor:
        """log p(x | y) per example (B,) for a prepared batch."""
        return self.decoder.log_prob(self.code(batch["y"]), batch["x"])

    def training_loss(self, batch: dict[str, Value]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ll = self.log_likelihood(batch)
        return -ll.mean(), {"bound": ll.mean().detach()}

    @torch.no_grad()
    def evaluate(self, batch: dict[str, Value]) -> dict[str, torch.Tensor]:
        """``bound`` is the exact log p(x | y) here (no latent, nothing to bound)."""
        ll = self.log_likelihood(batch)
        return {"bound": ll, "log_likelihood": ll}

    @torch.no_grad()
    def generate(self, y: Value, noise_scale: float = 0.0, output_noise: float | None = None) -> Value:
        """g's mode at noise 0 (beam search for text), a sample of p(x | y) scaled by ``noise_scale`` else
        (there is no latent: ``output_noise``, when given, is the only noise)."""
        noise = noise_scale if output_noise is None else output_noise
        return self.decoder.generate(self.code(y), noise)
