"""What a model's training step gets from the trainer: its optimizers, ready to step.

The model owns its whole step (:meth:`cmmkit.models.base.ConditionalModel.train_step`, Lightning
2's manual optimization on the model side): it computes its losses, calls ``backward`` and steps
the optimizers it chooses, in the order it chooses (a GAN: one forward pass, then D's step, then
G's). The trainer hands it a :class:`StepOptimizers` mapping of group name to
:class:`StepOptimizer`, a torch optimizer whose :meth:`~StepOptimizer.step` also does what the
trainer must do around every update, so no model needs to know about it:

- under ``torchrun``, average that optimizer's gradients over the ranks first: a loss computed
  through :meth:`StepOptimizers.training_loss` runs in ``DistributedDataParallel``, whose backward
  all-reduces the gradients bucket by bucket while it runs; any other backward (a GAN's own losses)
  is averaged in one ``all_reduce`` when the optimizer steps
  (:meth:`cmmkit.training.distributed.Dist.average_gradients_`);
- ``train.grad_clip_norm``: clip the (averaged) gradients to that total norm;
- the fault-injection point ``step`` (backward done, update not yet applied) of the crash tests.

Learning-rate schedules, the non-finite guard and checkpoints stay with the trainer, outside the
step.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

from cmmkit.training import faults
from cmmkit.training.distributed import Dist


class StepOptimizer:
    """A torch optimizer as a model's ``train_step`` uses it: ``zero_grad()``, then the model's own
    ``loss.backward()``, then ``step()``."""

    def __init__(self, optimizer: torch.optim.Optimizer, dist: Dist, synced: _Synced | None = None,
                 clip_norm: float | None = None) -> None:
        self.optimizer, self.dist, self.clip_norm = optimizer, dist, clip_norm
        self.synced = synced or _Synced()
        self.params = [p for group in optimizer.param_groups for p in group["params"]]

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        """Apply the gradients (averaged over the ranks under torchrun: by DDP's backward when the
        loss came from :meth:`StepOptimizers.training_loss`, else here in one ``all_reduce``)."""
        if not self.synced.take():
            self.dist.average_gradients_(self.params)
        if self.clip_norm is not None:  # after averaging: every rank clips the same gradients alike
            torch.nn.utils.clip_grad_norm_(self.params, self.clip_norm)
        faults.point("step")
        self.optimizer.step()

    def minimize(self, loss: torch.Tensor) -> None:
        """One plain update: zero the gradients, backpropagate ``loss``, step."""
        self.zero_grad()
        loss.backward()
        self.step()


class _Synced:
    """Set when a loss went through DDP, whose backward averaged every gradient over the ranks:
    the next optimizer step must not average them again."""

    def __init__(self) -> None:
        self.flag = False

    def take(self) -> bool:
        flag, self.flag = self.flag, False
        return flag


class StepOptimizers(Mapping[str, StepOptimizer]):
    """The model's optimizers by group name (:meth:`~cmmkit.models.base.ConditionalModel.optimizer_groups`).

    ``ddp``: under torchrun, the model's :meth:`~cmmkit.models.base.ConditionalModel.training_loss`
    wrapped in ``DistributedDataParallel`` (:func:`cmmkit.training.distributed.data_parallel_loss`)."""

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer], dist: Dist,
                 kind: type[StepOptimizer] = StepOptimizer, ddp: torch.nn.Module | None = None,
                 clip_norm: float | None = None) -> None:
        self._synced = _Synced()
        self._items = {name: kind(opt, dist, self._synced, clip_norm) for name, opt in optimizers.items()}
        self._ddp = ddp

    def training_loss(self, model: torch.nn.Module, batch: Mapping[str, object]) -> tuple[torch.Tensor, dict]:
        """``model.training_loss(batch)``, under torchrun through DistributedDataParallel: its
        backward overlaps the gradient all-reduce with the rest of the backward pass, and the
        optimizer's next ``step`` uses those averaged gradients as they are. Call it once per
        backward (what the default ``train_step`` does)."""
        if self._ddp is None:
            return model.training_loss(batch)  # type: ignore[operator]
        self._synced.flag = True
        return self._ddp(batch)

    def __getitem__(self, name: str) -> StepOptimizer:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def only(self) -> StepOptimizer:
        """The one optimizer of a single-group model (what the default ``train_step`` steps)."""
        if len(self._items) != 1:
            raise TypeError(f"this model has {len(self._items)} optimizer groups ({', '.join(self._items)}): "
                            "a model with several groups steps them in its own train_step")
        return next(iter(self._items.values()))
