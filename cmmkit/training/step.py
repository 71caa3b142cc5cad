"""What a model's training step gets from the trainer: its optimizers, ready to step.

The model owns its whole step (:meth:`cmmkit.models.base.ConditionalModel.train_step`, Lightning
2's manual optimization on the model side): it computes its losses, calls ``backward`` and steps
the optimizers it chooses, in the order it chooses (a GAN: one forward pass, then D's step, then
G's). The trainer hands it a :class:`StepOptimizers` mapping of group name to
:class:`StepOptimizer`, a torch optimizer whose :meth:`~StepOptimizer.step` also does what the
trainer must do around every update, so no model needs to know about it:

- under ``torchrun``, average that optimizer's gradients over the ranks first (one
  ``all_reduce`` per step; :meth:`cmmkit.training.distributed.Dist.average_gradients_`);
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

    def __init__(self, optimizer: torch.optim.Optimizer, dist: Dist) -> None:
        self.optimizer, self.dist = optimizer, dist
        self.params = [p for group in optimizer.param_groups for p in group["params"]]

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        """Apply the gradients (averaged over the ranks under torchrun)."""
        self.dist.average_gradients_(self.params)
        faults.point("step")
        self.optimizer.step()

    def minimize(self, loss: torch.Tensor) -> None:
        """One plain update: zero the gradients, backpropagate ``loss``, step."""
        self.zero_grad()
        loss.backward()
        self.step()


class StepOptimizers(Mapping[str, StepOptimizer]):
    """The model's optimizers by group name (:meth:`~cmmkit.models.base.ConditionalModel.optimizer_groups`)."""

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer], dist: Dist,
                 kind: type[StepOptimizer] = StepOptimizer) -> None:
        self._items = {name: kind(opt, dist) for name, opt in optimizers.items()}

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
