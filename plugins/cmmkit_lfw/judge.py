"""The LFW pair's judge, ``attribute_judge`` (``cmmkit train-judge --pair lfw_faces_attrs``): for each
dimension of a named-vector y (the 73 LFW attributes), whether it is present (y > 0). Its AUC on
real test faces is the ceiling for the attribute fidelity of generated faces
(:mod:`cmmkit_lfw.fidelity`). Any pair with a named-vector y may name it as its judge."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch.nn import functional as F

from cmmkit.api import Classifier, ClassifierConfig, Modality, Value


class JudgeConfig(ClassifierConfig):
    name: Literal["attribute_judge"] = "attribute_judge"
    hidden: int = Field(256, ge=1, description="features of x before the per-attribute logits")


class AttributeJudge(Classifier):
    """Logits (B, A), one per attribute: higher means the attribute is more likely present."""

    name = "attribute_judge"
    Config = JudgeConfig
    loss_name = "bce"
    config: JudgeConfig

    def outputs(self, y: Modality) -> int:
        return y.dims

    def loss_and_accuracy(self, logits: torch.Tensor, y: Value) -> tuple[torch.Tensor, torch.Tensor]:
        labels = (y > 0).float()
        bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(-1)
        return bce, ((logits > 0).float() == labels).float().mean(-1)
