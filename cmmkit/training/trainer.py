"""One training loop for every model.

Per batch, the loop prepares the raw batch once and lets the model take its whole step
(``model.train_step(batch, optimizers)``: one update for CMMA, a discriminator and a generator
update from one forward pass for a GAN); it never branches on the kind of model. Per epoch it
validates (the model's ``evaluate``, under a fixed seed so epochs are comparable), writes a preview PNG, an atomic
checkpoint and then the epoch's metrics row. Resuming restores weights, optimizer and RNG state
and the epoch's partial sums, and the epoch's shuffle is derived from (seed, epoch), so 2 epochs
straight equal 1 epoch + resume + 1 epoch, and a resume mid-epoch continues exactly.

Faults (docs/training.md): checkpoints are also written every ``train.checkpoint_every_minutes``
at a step boundary; SIGINT/SIGTERM stop the loop after the current step with a checkpoint
(:class:`~cmmkit.training.signals.TrainingInterrupted`); a non-finite loss stops it with
:class:`TrainingDiverged` and no checkpoint is written over the last good one. The finiteness
flag lives on the device and is read every step on CPU, every ``GPU_CHECK_EVERY`` steps and
before every save on a GPU, so it costs no per-step host synchronisation there.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from cmmkit.bound import bits_per_dim
from cmmkit.config import RunConfig
from cmmkit.errors import CmmkitError
from cmmkit.logs import no_bar
from cmmkit.modality import batch_size, to_device
from cmmkit.models.base import ConditionalModel
from cmmkit.pair import PairData
from cmmkit.training import faults, speed
from cmmkit.training.checkpoint import nonfinite
from cmmkit.training.distributed import current, data_parallel_loss
from cmmkit.training.metrics import MetricsLog
from cmmkit.training.optim import (
    lr_factor,
    make_optimizers,
    pick_device,
    restore_optimizers,
    rng_state,
    set_lr,
    set_rng_state,
)
from cmmkit.training.rundir import RunDir
from cmmkit.training.signals import StopFlag, TrainingInterrupted
from cmmkit.training.step import StepOptimizers

log = logging.getLogger(__name__)

GPU_CHECK_EVERY = 50  # steps between reads of the on-device non-finite flag (a host sync) on GPUs


class TrainingDiverged(CmmkitError):
    """The loss or the weights became NaN or infinite; the last good checkpoint is kept."""


class Trainer:
    """Trains ``model`` on ``data`` into ``run`` according to ``config.train``."""

    def __init__(self, config: RunConfig, model: ConditionalModel, data: PairData, run: RunDir,
                 *, progress: bool = True, meta: dict[str, Any] | None = None) -> None:
        self.config, self.model, self.data, self.run = config, model, data, run
        self.tc = config.train
        self.dist = current()  # torchrun's process group, or a single process
        self.device = pick_device(self.tc.device)
        if self.dist.active and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.model.to(self.device)
        speed.configure(self.model, self.device, self.tc.speed)  # TF32, channels_last, compile (train.speed)
        self.optimizers = make_optimizers(model, self.tc)
        self.dist.broadcast_module_(model)  # under torchrun: rank 0's weights everywhere
        ddp = data_parallel_loss(model, self.device) if self.dist.active else None
        self.step_optimizers = StepOptimizers(self.optimizers, self.dist, ddp=ddp,
                                              clip_norm=config.train.grad_clip_norm)  # gradients averaged over ranks
        self.progress = progress and self.dist.is_main
        self.meta = meta or {}
        self.epoch = 0  # completed epochs
        self.batch_in_epoch = 0  # batches already done in the current (incomplete) epoch
        self.step = 0
        self.samples_done = 0  # training examples seen, over all ranks
        self.progress_done = 0.0  # fraction of train.epochs done before the current step (lr decay)
        self.last_lr_factor = 1.0  # the schedule's factor of the last step taken (saved for resume)
        self.history: list[dict[str, Any]] = []  # one metrics row per completed epoch
        self.epoch_sums: dict[str, torch.Tensor] = {}  # the current epoch's summed step logs
        self.epoch_images, self.epoch_seconds = 0, 0.0
        self.epoch_saves = [0, 0.0]  # mid-epoch checkpoints in the current epoch: count, seconds
        self.last_saved: dict[str, int] | None = None
        self.stop = StopFlag()
        self.check_every = 1 if self.device.type == "cpu" else GPU_CHECK_EVERY
        self._steps = torch.zeros((), dtype=torch.long, device=self.device)  # step counter, on device
        self._first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        self._save_safe = True  # False inside a step or a save: a raw KeyboardInterrupt must not save
        self._last_save_time = time.monotonic()
        self.metrics = MetricsLog(run.path, tensorboard=self.tc.tensorboard)

    # --- state --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Optimizers, RNG (rank 0's; the other ranks' in ``rng_ranks``) and the epoch's sums."""
        rngs = self.dist.gather(rng_state())  # a collective under torchrun
        state = {"optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}, "rng": rngs[0],
                 "epoch_sums": {k: v.detach().clone() for k, v in self.epoch_sums.items()}}
        if self.dist.active:
            state["rng_ranks"] = rngs[1:]
        return state

    def save(self) -> Path:
        """Checkpoint at this step boundary; refuses (raises :class:`TrainingDiverged`) when the
        loss or the weights are non-finite, so the last good checkpoint is never overwritten."""
        self.check_finite(weights=True)
        position = {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step}
        meta = {**self.meta, **position, "history": self.history, "epoch_images": self.epoch_images,
                "epoch_seconds": self.epoch_seconds, "epoch_saves": self.epoch_saves, "world_size": self.dist.world,
                "samples_done": self.samples_done, "lr_factor": self.last_lr_factor,
                "optimizer_classes": {k: type(o).__name__ for k, o in self.optimizers.items()}}
        self._save_safe = False
        began = time.perf_counter()
        state = self.state()
        path = self.dist.on_main(lambda: self.run.save_checkpoint(self.model, state, meta)) or self.run.checkpoint
        if self.batch_in_epoch:
            self.epoch_saves = [self.epoch_saves[0] + 1, self.epoch_saves[1] + time.perf_counter() - began]
        self._save_safe = True
        self.last_saved = position
        self._last_save_time = time.monotonic()
        return path

    def restore(self, state: dict[str, Any], meta: dict[str, Any]) -> list[str]:
        """Continue from a checkpoint. The optimizers' hyperparameters (lr, betas, weight decay,
        ...) come from this trainer's config, not from the saved state, so ``--resume --set
        train.optimizer.lr=X`` takes effect; returns a note per changed hyperparameter."""
        notes = restore_optimizers(self.optimizers, state, meta, self.tc, self.run.checkpoint)
        self._restore_rng(state, meta)
        self.epoch, self.batch_in_epoch, self.step = meta["epoch"], meta["batch_in_epoch"], meta["step"]
        self._steps.fill_(self.step)
        self.samples_done = meta.get("samples_done", 0)
        self.last_lr_factor = meta.get("lr_factor", 1.0)
        self.progress_done = self.epoch / self.tc.epochs
        self.history = list(meta["history"]) if "history" in meta else self.metrics.history_until(self.epoch)
        self.epoch_sums = {k: v.to(self.device) for k, v in state.get("epoch_sums", {}).items()}
        self.epoch_images, self.epoch_seconds = meta.get("epoch_images", 0), meta.get("epoch_seconds", 0.0)
        self.epoch_saves = list(meta.get("epoch_saves", [0, 0.0]))
        self.last_saved = {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step}
        return notes

    def _restore_rng(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        saved_world, rank = meta.get("world_size", 1), self.dist.rank
        if saved_world == self.dist.world:
            set_rng_state(state["rng"] if rank == 0 else state["rng_ranks"][rank - 1])
            return
        if rank == 0:
            log.warning("resume: the run was trained by %s process(es), now %s: the data order and the position in "
                        "it are exact (the global batch is train.batch_size either way), the random draws (noise, "
                        "dropout) differ from an uninterrupted run", saved_world, self.dist.world)
        set_rng_state(state["rng"])
        if rank:
            torch.manual_seed(self.tc.seed * 1_000_003 + 7919 * rank + meta["step"])

    def check_finite(self, weights: bool = False) -> None:
        """Raise :class:`TrainingDiverged` if a step's logs (or, with ``weights``, a parameter)
        are non-finite. Reads the device flag: a host sync, so call it at a cadence."""
        bad = int(self._first_bad)
        bad_tensors = nonfinite(dict(self.model.state_dict())) if weights and bad < 0 else []
        if bad < 0 and not bad_tensors:
            return
        if bad >= 0:
            in_epoch = bad - (self.step - self.batch_in_epoch)
            what = f"non-finite loss at epoch {self.epoch + 1}, batch {in_epoch + 1}, step {bad + 1}"
        else:
            what = f"non-finite weights ({', '.join(bad_tensors[:3])}) after epoch {self.epoch}, step {self.step}"
        kept = (f"the last good checkpoint (epoch {self.last_saved['epoch']}, batch "
                f"{self.last_saved['batch_in_epoch']}, step {self.last_saved['step']}) is kept unchanged in "
                f"{self.run.checkpoint}" if self.last_saved else "no checkpoint was written")
        lr = self.tc.optimizer.lr
        raise TrainingDiverged(f"training diverged: {what}. Stopped without saving; {kept}. Lower the learning "
                               f"rate (train.optimizer.lr is {lr:g}) and continue from it with `cmmkit train --resume "
                               f"{self.run.path} --set train.optimizer.lr={lr / 10:g}`.")

    # --- loop ---------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Train until ``train.epochs`` epochs are done; returns the last validation metrics."""
        last: dict[str, float] = {}
        if self.dist.is_main:
            self.metrics.reset(self.history)
        try:
            with self.stop:
                while self.epoch < self.tc.epochs:
                    last = self._epoch()
                    self._stop_if_asked(self._agree_stop())
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt:
            self._interrupted_raw()
            raise
        finally:
            self.metrics.close()
        return last

    def _epoch(self) -> dict[str, float]:
        train_logs, n_images, seconds = self._train_epoch()
        self.check_finite()
        self.epoch += 1
        self.batch_in_epoch = 0
        last = self.validate()
        row = {"epoch": self.epoch, "step": self.step, **{f"train_{k}": v for k, v in train_logs.items()},
               **{f"val_{k}": v for k, v in last.items()}, "epoch_seconds": seconds,
               "images_per_second": n_images / max(seconds, 1e-9),
               "mid_epoch_checkpoints": self.epoch_saves[0], "mid_epoch_checkpoint_seconds": self.epoch_saves[1]}
        if self.dist.is_main:
            self.preview()
        self.history.append(row)
        self.epoch_sums, self.epoch_images, self.epoch_seconds, self.epoch_saves = {}, 0, 0.0, [0, 0.0]
        self.save()  # the checkpoint holds the row first: metrics.csv is rebuilt from it on resume
        faults.point("checkpoint-saved")
        if not self.dist.is_main:
            return last
        self.metrics.write(row)
        summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items())
        log.info("epoch %d/%d: %s (%.0f s, %.0f examples/s)", self.epoch, self.tc.epochs, summary, seconds,
                 n_images / max(seconds, 1e-9))
        return last

    def _stop_if_asked(self, signum: int | None) -> None:
        """At a step boundary: save and raise :class:`TrainingInterrupted` if ``signum`` (the
        signal every rank agreed on) is set."""
        if not signum:
            return
        position = {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step}
        path = self.save() if self.last_saved != position else self.run.checkpoint
        name = {2: "SIGINT", 15: "SIGTERM"}.get(signum, f"signal {signum}")
        raise TrainingInterrupted(signum, path, f"Stopped by {name} at a step boundary. Checkpoint saved to {path} "
                                  f"(epoch {self.epoch}, batch {self.batch_in_epoch}, step {self.step}).\n"
                                  f"Resume with: cmmkit train --resume {self.run.path}")

    def _interrupted_raw(self) -> None:
        """A KeyboardInterrupt that did not come through the stop flag (a second Ctrl-C, or no
        handler outside the main thread): save only if it did not land inside a step or a save."""
        if self._save_safe and self.last_saved is not None:
            try:
                path = self.save()
                where = f"Checkpoint saved to {path} (epoch {self.epoch}, batch {self.batch_in_epoch})"
            except (CmmkitError, KeyboardInterrupt):
                where = f"Not saved; the last checkpoint {self.run.checkpoint} is unchanged"
        else:
            where = (f"Interrupted inside a step or a save, so nothing was saved; the last checkpoint "
                     f"{self.run.checkpoint} (epoch {(self.last_saved or {}).get('epoch')}, batch "
                     f"{(self.last_saved or {}).get('batch_in_epoch')}) is unchanged")
        log.warning("\nInterrupted. %s.\nResume with: cmmkit train --resume %s", where, self.run.path)

    def _train_epoch(self) -> tuple[dict[str, float], int, float]:
        dataset = self.data.splits["train"]
        bs = self.tc.batch_size
        gen = torch.Generator().manual_seed(self.tc.seed * 1_000_003 + self.epoch)
        batches = dataset.epoch_batches(bs, gen)  # a shuffled order cut into batches (by tokens for text)
        self.model.train()
        every = self.tc.checkpoint_every_minutes * 60.0
        bar = tqdm(total=len(batches), initial=self.batch_in_epoch, desc=f"epoch {self.epoch + 1}/{self.tc.epochs}",
                   unit="batch", disable=no_bar(self.progress), leave=False, dynamic_ncols=True)
        start = time.perf_counter()
        try:
            for k in range(self.batch_in_epoch, len(batches)):
                mine = batches[k][self.dist.rank::self.dist.world]  # this rank's shard of the global batch
                batch = self._prepare(dataset.get_batch(mine))  # once per batch
                self.progress_done = (self.epoch + k / len(batches)) / self.tc.epochs
                self._save_safe = False
                logs = self.train_step(batch)
                self._save_safe = True
                self._record(logs)
                self.epoch_images += len(batches[k])
                self.samples_done += len(batches[k])
                self.batch_in_epoch = k + 1
                self.step += 1
                stop, due = self._decide(every, last=k + 1 == len(batches))
                if self.progress and (k % max(10, self.check_every) == 0 or k == len(batches) - 1):  # a host sync
                    bar.set_postfix({key: f"{float(v):.1f}" for key, v in logs.items()}, refresh=False)
                bar.update(1)
                if k + 1 < len(batches) and (stop or due):
                    self.epoch_seconds += time.perf_counter() - start
                    start = time.perf_counter()
                    if stop:
                        self._stop_if_asked(stop)  # saves, then raises
                    self.save()  # periodic, mid-epoch
        finally:
            bar.close()
        self.epoch_seconds += time.perf_counter() - start
        count = max(self.batch_in_epoch, 1) * self.dist.world
        keys = list(self.epoch_sums)  # the same order on every rank (the same model code)
        sums = self.dist.all_sum_(torch.stack([self.epoch_sums[k] for k in keys])) if keys else torch.zeros(0)
        return {key: float(v) / count for key, v in zip(keys, sums.tolist())}, self.epoch_images, self.epoch_seconds

    def _prepare(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A raw training batch on the device (pinned, non-blocking on CUDA), prepared by the model."""
        sp = self.tc.speed
        return speed.format_batch(self.model.prepare(speed.to_device(raw, self.device, sp)), self.device, sp)

    def _decide(self, every: float, last: bool) -> tuple[int | None, bool]:
        """After a step: (signal to stop on, timed checkpoint due); raises on a non-finite loss. Under
        torchrun the ranks agree (one all_reduce at the check cadence and at the epoch's last step),
        so a signal or a timer seen by one rank stops or saves all ranks at the same step."""
        due = every > 0 and time.monotonic() - self._last_save_time >= every
        if not self.dist.active:
            if self.step % self.check_every == 0:
                self.check_finite()
            return self.stop.signum, due
        if self.step % self.check_every and not last:
            return None, False
        flags = torch.stack([torch.tensor(float(self.stop.signum or 0), device=self.device),
                             torch.tensor(float(due), device=self.device), self._first_bad.double()])
        signum, due_any, bad = self.dist.all_max_(flags).tolist()
        if bad >= 0:
            self._first_bad.fill_(int(bad))
            self.check_finite()
        # the agreed value, never the local flag: a signal landing after the all_reduce must not
        # make this rank stop alone (it is seen, by all ranks, at the next agreement)
        return int(signum) or None, bool(due_any)

    def _agree_stop(self) -> int | None:
        """At an epoch boundary: the signal to stop on (under torchrun, one any rank has seen)."""
        if not self.dist.active:
            return self.stop.signum
        signum = self.dist.all_max_(torch.tensor(float(self.stop.signum or 0), device=self.device)).item()
        return int(signum) or None

    def _record(self, logs: dict[str, torch.Tensor]) -> None:
        """Add the step's logs to the epoch sums and note (on device) the first non-finite step."""
        total = torch.zeros((), device=self.device)
        for key, value in logs.items():
            value = value.detach().float()
            self.epoch_sums[key] = self.epoch_sums.get(key, torch.zeros((), device=self.device)) + value
            total = total + value
        ok = torch.isfinite(total) | (self._first_bad >= 0)
        self._first_bad = torch.where(ok, self._first_bad, self._steps)
        self._steps += 1

    def lr_factor(self, step: int | None = None, progress: float | None = None) -> float:
        """The schedule's factor of step ``step`` (1-based; default: the step about to be taken) at
        ``progress`` (fraction of ``train.epochs`` done; default: where training is now)."""
        return lr_factor(self.tc, self.step + 1 if step is None else step,
                         self.progress_done if progress is None else progress)

    def train_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The model's own step on a prepared batch, at this step's learning rate."""
        self.last_lr_factor = set_lr(self.optimizers, self.tc, self.step + 1, self.progress_done)
        return self.model.train_step(batch, self.step_optimizers)

    @torch.no_grad()
    def validate(self, split: str = "val") -> dict[str, float]:
        """Mean of the model's per-example metrics on ``split`` (with a fixed seed)."""
        dataset = self.data.splits[split]
        n = min(len(dataset), self.tc.max_val_examples or len(dataset))
        self.model.eval()
        sums: dict[str, float] = {}
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.tc.val_seed)
            mine = torch.arange(self.dist.rank, n, self.dist.world)  # under torchrun: this rank's examples
            for i in range(0, len(mine), self.tc.batch_size):
                batch = to_device(dataset.get_batch(mine[i:i + self.tc.batch_size]), self.device)
                for key, value in self.model.evaluate(self.model.prepare(batch)).items():
                    sums[key] = sums.get(key, 0.0) + float(value.sum())
        if self.dist.active:  # exact sums over the ranks' disjoint shards: each example counted once
            keys = sorted(sums)
            total = self.dist.all_sum_(torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=self.device))
            sums = dict(zip(keys, total.tolist()))
        out = {key: v / n for key, v in sums.items()}
        if "bound" in out:
            x = self.model.x
            out["bound_bits_per_dim"] = bits_per_dim(out["bound"], x.dims, x.discrete_log_offset())
        return out

    @torch.no_grad()
    def preview(self) -> Path | None:
        """Generate x from the first validation y's (noise 0) and let the modality draw them."""
        k = min(self.tc.grid_examples, len(self.data.splits["val"]))
        if k == 0 or not self.model.can_generate:
            return None
        batch = self.model.prepare(to_device(self.data.splits["val"].get_batch(torch.arange(k)), self.device),
                                   dequantize=False)
        self.model.eval()
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the training RNG stream must not depend on previews
            generated = self.model.generate(batch["y"], noise_scale=0.0)
        real = batch["x"]
        path = self.run.samples / f"epoch_{self.epoch:03d}.png"
        return path if self.model.x.save_preview(real, generated, path) and batch_size(real) else None
