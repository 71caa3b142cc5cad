"""Data-parallel training under ``torchrun``: process group, rank roles and the few collectives.

``torchrun --nproc-per-node N -m cmmkit.cli train ...`` starts N copies of ``cmmkit train`` with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set. Each copy joins the process group (``nccl`` on
CUDA, ``gloo`` on CPU), starts from rank 0's weights (:meth:`Dist.broadcast_module_`), averages
its gradients over the ranks -- the default training step runs the model's loss in
``DistributedDataParallel`` (:func:`data_parallel_loss`: the all-reduce overlaps the backward pass);
a model that owns its step (a GAN's two updates from one forward pass) has each optimizer's
gradients averaged in one all-reduce when it steps (:meth:`Dist.average_gradients_`, called by
:class:`~cmmkit.training.step.StepOptimizer`), so it is data-parallel without knowing it -- and trains on its shard
of every global batch (``train.batch_size`` examples; rank ``r`` takes
positions ``r, r + N, ...`` of the batch drawn from the (seed, epoch) permutation, so the global
batch and the data order do not depend on N). Only rank 0 writes (lock, checkpoints, metrics,
previews, config, progress); decisions that must be unanimous (stop on a signal, a timed
checkpoint, a non-finite loss) are one ``all_reduce(MAX)`` of three flags at the check cadence.
Without ``torchrun`` (``WORLD_SIZE`` unset or 1) every call here is free and does nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_max(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise maximum over ranks (one collective, one host sync)."""
        t = torch.tensor(values, dtype=torch.float64, device=device)
        if self.active:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()

    def all_max_(self, t: torch.Tensor) -> torch.Tensor:
        if self.active:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t

    def all_sum_(self, t: torch.Tensor) -> torch.Tensor:
        if self.active:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def broadcast_module_(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers (in place)."""
        if self.active:
            with torch.no_grad():
                for t in [*module.parameters(), *module.buffers()]:
                    dist.broadcast(t.data, src=0)

    def average_gradients_(self, params: list[torch.nn.Parameter]) -> None:
        """Replace each gradient by its mean over the ranks, in one ``all_reduce`` (what
        DistributedDataParallel's backward did). A parameter without a gradient counts as zeros
        on that rank, and keeps none when no rank has one, as under DDP's
        ``find_unused_parameters``; the flags travel in the same collective, so ranks whose
        steps reached different parameters cannot deadlock or mismatch."""
        if not self.active or not params:
            return
        ref = params[0]
        flat = torch.cat([p.grad.reshape(-1).to(ref.dtype) if p.grad is not None
                          else torch.zeros(p.numel(), dtype=ref.dtype, device=ref.device) for p in params]
                         + [torch.tensor([float(p.grad is not None) for p in params], dtype=ref.dtype,
                                         device=ref.device)])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        missing = any(p.grad is None for p in params)
        present = flat[-len(params):].tolist() if missing else None  # a host sync only when needed
        offset = 0
        for i, p in enumerate(params):
            n = p.numel()
            if p.grad is not None or (present is not None and present[i] > 0):
                mean = flat[offset:offset + n].view_as(p).div_(self.world).to(p.dtype)
                if p.grad is None:
                    p.grad = mean.clone()
                else:
                    p.grad.copy_(mean)
            offset += n

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (pickled; use for small host objects only), on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def on_main(self, fn: Callable[[], T]) -> T | None:
        """Run ``fn`` on rank 0 only; an error there is raised on every rank (no rank is left
        waiting in a collective)."""
        if not self.active:
            return fn()
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except Exception as exc:
                error = exc
        box = [error]
        dist.broadcast_object_list(box, src=0)
        if box[0] is not None:
            raise box[0]
        return result

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


class _TrainingLoss(torch.nn.Module):
    """A model seen by DistributedDataParallel: its forward is the model's training loss, so DDP's
    hooks (gradient buckets, unused-parameter search) wrap exactly the step's backward."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> Any:
        return self.model.training_loss(batch)


def data_parallel_loss(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model.training_loss`` wrapped in ``DistributedDataParallel`` (the parameters stay the
    model's own; nothing is copied). ``find_unused_parameters``: a model's loss need not reach every
    parameter (e.g. CMMA's q(y | z) network when its surrogate weight is 0)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(_TrainingLoss(model), device_ids=ids, find_unused_parameters=True)


def setup() -> Dist:
    """Join the ``torchrun`` process group when there is one (idempotent): gloo for CPU tensors,
    and NCCL for CUDA tensors when CUDA is present (with each rank on GPU ``LOCAL_RANK``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(backend="cpu:gloo,cuda:nccl")
        else:
            dist.init_process_group(backend="gloo")
    return current()


def current() -> Dist:
    """The process group this process belongs to (a single process when none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Dist()
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def teardown(wait: bool = True) -> None:
    """Leave the process group. With ``wait`` (every rank ended at the same point) first wait for
    all ranks: a rank that destroys its gloo group while another still has a collective or a
    connection in flight can abort the peer ("terminate called without an active exception",
    SIGABRT), seen under load in the 2-process test. The wait is bounded on gloo, so a rank that
    died cannot hang the others."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if wait:
        try:
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=timedelta(seconds=120))
            else:
                dist.barrier()
        except Exception as exc:  # a peer is gone: leave anyway, saying so
            log.warning("leaving the process group without all ranks: %s", exc)
    dist.destroy_process_group()
