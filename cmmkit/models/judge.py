"""Judges: classifiers trained on real x to score how well generated x carry y.

:class:`Classifier` is what every judge shares: the x modality's encoder, dropout and a linear head
of logits, trained and evaluated through the one trainer (``cmmkit train-judge``); it does not
generate. A judge subclass says how many logits it has and what its loss and accuracy are.

Pairs ship their judges as plugins (e.g. an attribute classifier for images, a classifier of
audio) and name them in :attr:`cmmkit.pair.Pair.judge_model`.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from cmmkit.modality import Modality, Value
from cmmkit.models.base import ConditionalModel, ModelConfig


class ClassifierConfig(ModelConfig):
    hidden: int = Field(256, ge=1, description="features of x before the logits")
    dropout: float = Field(0.2, ge=0.0, lt=1.0)


class Classifier(ConditionalModel):
    """x -> logits (B, ``outputs(y)``): features from the x modality's encoder, dropout, linear."""

    can_generate = False
    loss_name: ClassVar[str] = "loss"  # the per-example loss's name in metrics.csv
    config: ClassifierConfig

    def __init__(self, config: ClassifierConfig, x: Modality, y: Modality) -> None:
        super().__init__(config, x, y)
        self.features = x.encoder(config.hidden)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.hidden, self.outputs(y)))

    @abstractmethod
    def outputs(self, y: Modality) -> int:
        """Number of logits for the condition modality ``y``."""

    @abstractmethod
    def loss_and_accuracy(self, logits: torch.Tensor, y: Value) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example loss and accuracy (B,) of ``logits`` against the prepared condition ``y``."""

    def logits(self, x: Value) -> torch.Tensor:
        """Logits of prepared x."""
        return self.head(self.features(x))

    def prepare(self, batch: dict[str, Value], dequantize: bool = True) -> dict[str, Value]:
        """Judges read x as generation shows it: never dequantized."""
        return super().prepare(batch, dequantize=False)

    def _loss(self, batch: dict[str, Value]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loss_and_accuracy(self.logits(batch["x"]), batch["y"])

    def training_loss(self, batch: dict[str, Value]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, accuracy = self._loss(batch)
        return loss.mean(), {"accuracy": accuracy.mean().detach()}

    @torch.no_grad()
    def evaluate(self, batch: dict[str, Value]) -> dict[str, torch.Tensor]:
        loss, accuracy = self._loss(batch)
        return {self.loss_name: loss, "accuracy": accuracy}

    def generate(self, y: Value, noise_scale: float = 0.0, output_noise: float | None = None) -> Value:
        raise NotImplementedError(f"a {self.name} classifies x; it does not generate")
