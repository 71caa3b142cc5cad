"""An attribute classifier ("judge") trained on real x to score how well generated x carry y.

It predicts, for each dimension of a named-vector y (e.g. the 73 LFW attributes), whether it is
present (y > 0). Its AUC on real test faces is the ceiling for the attribute fidelity of
generated faces. It is a model like any other so that the one trainer trains it
(``cmmkit train-judge``); it does not generate.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from cmmkit.modality import Modality, Value
from cmmkit.models.base import ConditionalModel, ModelConfig


class JudgeConfig(ModelConfig):
    name: Literal["attribute_judge"] = "attribute_judge"
    hidden: int = Field(256, ge=1, description="features of x before the per-attribute logits")
    dropout: float = Field(0.2, ge=0.0, lt=1.0)


class AttributeJudge(ConditionalModel):
    name = "attribute_judge"
    Config = JudgeConfig
    can_generate = False
    config: JudgeConfig

    def __init__(self, config: JudgeConfig, x: Modality, y: Modality) -> None:
        super().__init__(config, x, y)
        self.features = x.encoder(config.hidden)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.hidden, y.dims))

    def scores(self, x: Value) -> torch.Tensor:
        """Logits (B, A) for prepared x: higher means the attribute is more likely present."""
        return self.head(self.features(x))

    def _loss(self, batch: dict[str, Value]) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.prepare(batch, dequantize=False)
        logits = self.scores(p["x"])
        labels = (p["y"] > 0).float()
        bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(-1)
        accuracy = ((logits > 0).float() == labels).float().mean(-1)
        return bce, accuracy

    def training_loss(self, batch: dict[str, Value], group: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        bce, accuracy = self._loss(batch)
        return bce.mean(), {"accuracy": accuracy.mean().detach()}

    @torch.no_grad()
    def evaluate(self, batch: dict[str, Value]) -> dict[str, torch.Tensor]:
        bce, accuracy = self._loss(batch)
        return {"bce": bce, "accuracy": accuracy}

    def generate(self, y: Value, noise_scale: float = 0.0, output_noise: float | None = None) -> Value:
        raise NotImplementedError("an attribute judge classifies x; it does not generate")
