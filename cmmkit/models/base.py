"""The one contract between models and the trainer.

The trainer knows nothing about CMMA, VAEs or GANs. Per batch it prepares the raw batch once
(:meth:`ConditionalModel.prepare`) and hands it with the model's optimizers (one per
:meth:`~ConditionalModel.optimizer_groups` entry) to :meth:`ConditionalModel.train_step`, which
owns the whole step (Lightning 2's manual optimization, on the model side). The default step is
one update on :meth:`~ConditionalModel.training_loss`; a model with several optimizers (a GAN)
writes its own, sharing one forward pass between its updates. On validation data the trainer
averages :meth:`~ConditionalModel.evaluate`.

Values: every model method takes and returns *prepared* values (what the modalities'
``prepare`` makes of a dataset's raw values; what decoders generate). Conversions from raw data
happen once, in :meth:`~ConditionalModel.prepare`; from and to users' values once, in
:class:`cmmkit.runs.TrainedRun`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from cmmkit.modality import Modality, Value

if TYPE_CHECKING:
    from cmmkit.training.step import StepOptimizers


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
        """Raw batch (a dataset's values) -> prepared batch via the modalities, dequantizing discrete
        data when asked (training and the bound; never for generation or editing). Called once per
        batch by the trainer and the evaluators; a model reading x in its own form (a judge that
        listens to waveforms) overrides it."""
        return {"x": self.x.prepare(batch["x"], dequantize), "y": self.y.prepare(batch["y"], dequantize)}

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named parameter groups, one optimizer each (configured by ``train.optimizer`` or
        ``train.group_optimizers.NAME``), handed to :meth:`train_step` by name."""
        return {"main": [p for p in self.parameters() if p.requires_grad]}

    def train_step(self, batch: dict[str, Value], optimizers: StepOptimizers) -> dict[str, torch.Tensor]:
        """One training step on a prepared batch; returns detached scalars to log (tensors, so the
        trainer syncs with the device only when it displays them; all must be finite, or the
        trainer stops the run as diverged). The default minimizes :meth:`training_loss` with the one
        optimizer; override it to own the step (several optimizers, a shared forward pass, n-critic
        steps): call ``optimizers[name].zero_grad()``, ``loss.backward()`` and
        ``optimizers[name].step()`` (its ``step`` averages gradients over ranks under torchrun).
        The default computes the loss through ``optimizers.training_loss``, which under torchrun
        runs it in DistributedDataParallel (gradients averaged during the backward pass)."""
        loss, logs = optimizers.training_loss(self, batch)
        optimizers.only().minimize(loss)
        return {"loss": loss.detach(), **logs}

    def training_loss(self, batch: dict[str, Value]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss to minimise on a prepared batch, plus detached scalars to log: what the
        default :meth:`train_step` needs (a model that overrides ``train_step`` need not define it)."""
        raise NotImplementedError(f"model {self.name!r} defines neither training_loss(batch) nor its own "
                                  "train_step(batch, optimizers)")

    @abstractmethod
    def evaluate(self, batch: dict[str, Value]) -> dict[str, torch.Tensor]:
        """Per-example validation metrics on a prepared batch, each of shape (B,). ``"bound"``
        (nats, higher is better) is reported in bits per dimension as well."""

    @abstractmethod
    def generate(self, y: Value, noise_scale: float = 0.0, output_noise: float | None = None) -> Value:
        """Prepared x generated from a prepared y; ``noise_scale=0`` uses the means (as in §4.5).
        ``output_noise`` scales the decoder's own noise (pixel noise, token sampling) separately
        from the latent's: ``noise_scale=1, output_noise=0`` draws z and shows g's mean at it.
        None means the same as ``noise_scale``."""

    def edit(self, x: Value, y_orig: Value, y_new: Value) -> Value:
        """Prepared x: the prepared example ``x`` (whose condition is ``y_orig``) changed to show the
        condition ``y_new`` (prepared), with noise 0 (§4.5). Models without a posterior cannot do this."""
        from cmmkit.errors import ConfigError

        raise ConfigError(f"a {self.name} run {self.edit_refusal}")

    @property
    def can_infer(self) -> bool:
        """Whether :meth:`infer_y` works for this model as configured."""
        return False

    def infer_y(self, x: Value) -> Value:
        """Prepared y inferred from prepared x alone (for examples whose condition is missing)."""
        from cmmkit.errors import ConfigError

        raise ConfigError(f"a {self.name} run cannot infer y from x; train CMMA with model.posterior=x "
                          "(its q(y | z) infers attributes from the face alone, §2.1)")

    def extra_state(self) -> dict[str, Any]:
        """JSON-serialisable state saved with checkpoints besides the weights (none by default)."""
        return {}
