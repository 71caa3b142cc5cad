"""The one contract between models and the trainer.

The trainer knows nothing about CMMA, VAEs or GANs: it asks a model for its optimizer groups,
calls :meth:`ConditionalModel.training_loss` once per group per batch (so a GAN alternates its
discriminator and generator steps through this model-side hook), and averages
:meth:`ConditionalModel.evaluate` on validation data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from cmmkit.modality import Modality, Value


class ModelConfig(BaseModel):
    """Config of a model; subclasses add fields. ``name`` selects the registered model."""

    model_config = ConfigDict(extra="forbid")
    name: str


class ConditionalModel(nn.Module, ABC):
    """A model of p(x | y) for a pair's modalities x (generated) and y (conditioning)."""

    name: ClassVar[str]
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    can_generate: ClassVar[bool] = True  # False for helpers such as attribute classifiers
    can_edit: ClassVar[bool] = False  # True where :meth:`edit` is implemented (a posterior exists)
    edit_refusal: ClassVar[str] = ("cannot edit an existing x: it has no way to encode one (§4.5: only models with "
                                   "a posterior q(z | x, ...), such as cmma and cvae, can)")  # why, when it cannot

    def __init__(self, config: ModelConfig, x: Modality, y: Modality) -> None:
        super().__init__()
        self.config, self.x, self.y = config, x, y

    def prepare(self, batch: dict[str, Value], dequantize: bool = True) -> dict[str, Value]:
        """Raw batch -> model inputs via the modalities (dequantizing discrete data)."""
        return {"x": self.x.prepare(batch["x"], dequantize), "y": self.y.prepare(batch["y"], dequantize)}

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named parameter groups, one optimizer each, stepped in this order on every batch."""
        return {"main": [p for p in self.parameters() if p.requires_grad]}

    @abstractmethod
    def training_loss(self, batch: dict[str, Value], group: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss to minimise for optimizer ``group`` on a raw batch, plus detached scalars to
        log (tensors, so the trainer syncs with the device only when it displays them)."""

    @abstractmethod
    def evaluate(self, batch: dict[str, Value]) -> dict[str, torch.Tensor]:
        """Per-example validation metrics, each of shape (B,). ``"bound"`` (nats, higher is
        better) is reported in bits per dimension as well."""

    @abstractmethod
    def generate(self, y: Value, noise_scale: float = 0.0, output_noise: float | None = None) -> Value:
        """Prepared x generated from a raw y; ``noise_scale=0`` uses the means (as in §4.5).
        ``output_noise`` scales the decoder's own noise (pixel noise, token sampling) separately
        from the latent's: ``noise_scale=1, output_noise=0`` draws z and shows g's mean at it.
        None means the same as ``noise_scale``."""

    def edit(self, x: Value, y_orig: Value, y_new: Value) -> Value:
        """Prepared x: the raw example ``x`` (whose condition is ``y_orig``) changed to show the raw
        condition ``y_new``, with noise 0 (§4.5). Models without a posterior cannot do this."""
        from cmmkit.errors import ConfigError

        raise ConfigError(f"a {self.name} run {self.edit_refusal}")

    @property
    def can_infer(self) -> bool:
        """Whether :meth:`infer_y` works for this model as configured."""
        return False

    def infer_y(self, x: Value) -> Value:
        """Prepared y inferred from raw x alone (for examples whose condition is missing)."""
        from cmmkit.errors import ConfigError

        raise ConfigError(f"a {self.name} run cannot infer y from x; train CMMA with model.posterior=x "
                          "(its q(y | z) infers attributes from the face alone, §2.1)")

    def extra_state(self) -> dict[str, Any]:
        """JSON-serialisable state saved with checkpoints besides the weights (none by default)."""
        return {}
