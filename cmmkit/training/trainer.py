"""One training loop for every model.

Per batch, the loop steps each of the model's optimizer groups in order (one for CMMA, two for a
GAN) with the loss the model returns for that group. Per epoch it validates (the model's
``evaluate``, under a fixed seed so epochs are comparable), logs metrics, writes a preview PNG and
an atomic checkpoint. Resuming restores weights, optimizer and RNG state, and the epoch's shuffle
is derived from (seed, epoch), so 2 epochs straight equal 1 epoch + resume + 1 epoch.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from cmmkit.bound import bits_per_dim
from cmmkit.config import RunConfig, TrainConfig
from cmmkit.errors import ConfigError
from cmmkit.modality import batch_size, to_device
from cmmkit.models.base import ConditionalModel
from cmmkit.pair import PairData
from cmmkit.training.metrics import MetricsLog
from cmmkit.training.rundir import RunDir


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: {name!r} is not a device; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} asked for, but CUDA is not available here")
    return device


def make_optimizers(model: ConditionalModel, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """One torch optimizer per model group, configured by ``train.optimizer`` or a group override."""
    groups = model.optimizer_groups()
    unknown = set(train.group_optimizers) - set(groups)
    if unknown:
        raise ConfigError(f"train.group_optimizers: unknown group(s) {sorted(unknown)}; "
                          f"model {model.name!r} has {sorted(groups)}")
    out = {}
    for name, params in groups.items():
        cfg = train.group_optimizers.get(name, train.optimizer)
        cls = getattr(torch.optim, cfg.name, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise ConfigError(f"train.optimizer.name: {cfg.name!r} is not a torch.optim optimizer "
                              "(e.g. Adagrad, Adam, SGD)")
        try:
            out[name] = cls(params, lr=cfg.lr, **cfg.kwargs)
        except TypeError as exc:
            raise ConfigError(f"train.optimizer.kwargs: {cfg.name} rejected them: {exc}") from None
    return out


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Trains ``model`` on ``data`` into ``run`` according to ``config.train``."""

    def __init__(self, config: RunConfig, model: ConditionalModel, data: PairData, run: RunDir,
                 *, progress: bool = True, meta: dict[str, Any] | None = None) -> None:
        self.config, self.model, self.data, self.run = config, model, data, run
        self.tc = config.train
        self.device = pick_device(self.tc.device)
        self.model.to(self.device)
        self.optimizers = make_optimizers(model, self.tc)
        self.progress = progress
        self.meta = meta or {}
        self.epoch = 0  # completed epochs
        self.batch_in_epoch = 0  # batches already done in the current (incomplete) epoch
        self.step = 0
        self.metrics = MetricsLog(run.path, tensorboard=self.tc.tensorboard)

    # --- state --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}, "rng": _rng_state()}

    def save(self) -> Path:
        meta = {**self.meta, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step}
        return self.run.save_checkpoint(self.model, self.state(), meta)

    def restore(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        _set_rng_state(state["rng"])
        self.epoch, self.batch_in_epoch, self.step = meta["epoch"], meta["batch_in_epoch"], meta["step"]

    # --- loop ---------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Train until ``train.epochs`` epochs are done; returns the last validation metrics."""
        last: dict[str, float] = {}
        try:
            while self.epoch < self.tc.epochs:
                start = time.perf_counter()
                train_logs, n_images = self._train_epoch()
                seconds = time.perf_counter() - start
                self.epoch += 1
                self.batch_in_epoch = 0
                last = self.validate()
                row = {"epoch": self.epoch, "step": self.step, **{f"train_{k}": v for k, v in train_logs.items()},
                       **{f"val_{k}": v for k, v in last.items()}, "epoch_seconds": seconds,
                       "images_per_second": n_images / max(seconds, 1e-9)}
                self.metrics.write(row)
                self.preview()
                self.save()
                summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items())
                tqdm.write(f"epoch {self.epoch}/{self.tc.epochs}: {summary} ({seconds:.0f} s, "
                           f"{n_images / max(seconds, 1e-9):.0f} examples/s)", file=sys.stderr)
        except KeyboardInterrupt:
            path = self.save()
            print(f"\nInterrupted. Checkpoint saved to {path} (epoch {self.epoch}, batch {self.batch_in_epoch}).\n"
                  f"Resume with: cmmkit train --resume {self.run.path}", file=sys.stderr)
            raise
        finally:
            self.metrics.close()
        return last

    def _train_epoch(self) -> tuple[dict[str, float], int]:
        dataset = self.data.splits["train"]
        n, bs = len(dataset), self.tc.batch_size
        gen = torch.Generator().manual_seed(self.tc.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=gen)
        batches = [order[i:i + bs] for i in range(0, n, bs)]
        self.model.train()
        sums: dict[str, torch.Tensor] = {}
        done_images = 0
        bar = tqdm(total=len(batches), initial=self.batch_in_epoch, desc=f"epoch {self.epoch + 1}/{self.tc.epochs}",
                   unit="batch", disable=not self.progress, leave=False, dynamic_ncols=True)
        try:
            for k in range(self.batch_in_epoch, len(batches)):
                batch = to_device(dataset.get_batch(batches[k]), self.device)
                logs = self.train_step(batch)
                for key, value in logs.items():
                    sums[key] = sums.get(key, 0.0) + value
                done_images += len(batches[k])
                self.batch_in_epoch = k + 1
                self.step += 1
                if self.progress and (k % 10 == 0 or k == len(batches) - 1):
                    bar.set_postfix({key: f"{float(v):.1f}" for key, v in logs.items()}, refresh=False)
                bar.update(1)
        finally:
            bar.close()
        count = max(self.batch_in_epoch, 1)
        return {key: float(v) / count for key, v in sums.items()}, done_images

    def train_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        logs: dict[str, torch.Tensor] = {}
        for group, opt in self.optimizers.items():
            opt.zero_grad(set_to_none=True)
            loss, group_logs = self.model.training_loss(batch, group)
            loss.backward()
            opt.step()
            logs["loss" if len(self.optimizers) == 1 else f"loss_{group}"] = loss.detach()
            logs.update(group_logs)
        return logs

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
            for i in range(0, n, self.tc.batch_size):
                batch = to_device(dataset.get_batch(torch.arange(i, min(i + self.tc.batch_size, n))), self.device)
                for key, value in self.model.evaluate(batch).items():
                    sums[key] = sums.get(key, 0.0) + float(value.sum())
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
        batch = to_device(self.data.splits["val"].get_batch(torch.arange(k)), self.device)
        self.model.eval()
        generated = self.model.generate(batch["y"], noise_scale=0.0)
        real = self.model.x.prepare(batch["x"], dequantize=False)
        path = self.run.samples / f"epoch_{self.epoch:03d}.png"
        return path if self.model.x.save_preview(real, generated, path) and batch_size(real) else None
