"""Devices, optimizers, the learning-rate schedule and RNG state: what the trainer builds and
restores around its loop, kept apart from the loop itself."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import torch

from cmmkit.config import TrainConfig
from cmmkit.errors import CheckpointError, ConfigError
from cmmkit.models.base import ConditionalModel


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
        kwargs = dict(cfg.kwargs)
        if train.speed.fused_optimizer and not {"fused", "foreach"} & set(kwargs) and _has_fused(cls, params):
            kwargs["fused"] = True  # one kernel per parameter instead of ~6 ops: same update up to rounding
        try:
            out[name] = cls(params, lr=cfg.lr, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"train.optimizer.kwargs: {cfg.name} rejected them: {exc}") from None
    return out


#: torch.optim classes with a fused CPU and CUDA kernel in torch >= 2.4 (others keep their default)
FUSED = ("Adam", "AdamW", "SGD", "Adagrad")

#: implementation choices, not hyperparameters: a resume may change them without a note
IMPLEMENTATION_KEYS = frozenset({"fused", "foreach", "capturable", "differentiable"})


def _has_fused(cls: type[torch.optim.Optimizer], params: list[torch.nn.Parameter]) -> bool:
    return (cls.__name__ in FUSED and cls.__module__.startswith("torch.optim")
            and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params))


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def lr_factor(train: TrainConfig, step: int, progress: float = 0.0) -> float:
    """The learning rate of step ``step`` (1-based) as a fraction of the configured one: linear
    warm-up over ``train.warmup_steps``, then constant, ``sqrt(warmup / step)`` (Vaswani et al.
    2017), or a linear / half-cosine decay to ``train.min_lr_fraction`` over the run's last
    ``train.decay_fraction`` (1: all of it; less: warmup-stable-decay, Hägele et al. 2024). ``progress``
    is the fraction of ``train.epochs`` done before this step ((epoch + batch / batches) / epochs):
    batch counts may differ between epochs (sentences batched by tokens), so the decay follows
    progress, not a step total. A function of the position alone, so resuming continues the
    schedule exactly."""
    step, warm = max(step, 1), train.warmup_steps
    factor = min(1.0, step / warm) if warm else 1.0
    if train.lr_schedule == "inverse_sqrt" and step > max(warm, 1):
        factor = (max(warm, 1) / step) ** 0.5
    elif train.lr_schedule in ("linear", "cosine"):
        left = min((1.0 - min(max(progress, 0.0), 1.0)) / train.decay_fraction, 1.0)  # 1 until the decay starts
        shape = left if train.lr_schedule == "linear" else 0.5 * (1.0 - math.cos(math.pi * left))
        factor *= train.min_lr_fraction + (1.0 - train.min_lr_fraction) * shape
    return factor


def schedule_jump(saved: TrainConfig, train: TrainConfig, meta: dict[str, Any], next_factor: float) -> str | None:
    """What a resume with another ``train.epochs`` does to a decaying schedule (None if nothing):
    the curve is stretched to the new length, so the rate moves at once."""
    if train.lr_schedule not in ("linear", "cosine") or saved.epochs == train.epochs:
        return None
    return (f"train.epochs {saved.epochs} -> {train.epochs} under the {train.lr_schedule} schedule: the rate now "
            f"decays over the new length, from {meta.get('lr_factor', 1.0):.3g} of the configured rate at the "
            f"last step to {next_factor:.3g} at the next")


def set_lr(optimizers: dict[str, torch.optim.Optimizer], train: TrainConfig, step: int,
           progress: float = 0.0) -> float:
    """Set every group's rate for step ``step``: its configured rate times :func:`lr_factor`
    (nothing to do without a schedule); returns the factor applied."""
    if not train.warmup_steps and train.lr_schedule == "constant":
        return 1.0
    factor = lr_factor(train, step, progress)
    for group, opt in optimizers.items():
        base = train.group_optimizers.get(group, train.optimizer).lr
        for param_group in opt.param_groups:
            param_group["lr"] = base * factor
    return factor


def restore_optimizers(optimizers: dict[str, torch.optim.Optimizer], state: dict[str, Any], meta: dict[str, Any],
                       train: TrainConfig, checkpoint: Path) -> list[str]:
    """Load the saved optimizer states, keeping this config's hyperparameters (lr, betas, weight
    decay, ...), so ``--resume --set train.optimizer.lr=X`` takes effect; a note per changed one."""
    saved_classes = meta.get("optimizer_classes", {})
    notes = []
    for name, opt in optimizers.items():
        if saved_classes.get(name, type(opt).__name__) != type(opt).__name__:
            raise ConfigError(f"optimizer group {name!r}: the run was trained with {saved_classes[name]}, the "
                              f"config asks for {type(opt).__name__}; an optimizer's class cannot change on "
                              "resume (its saved state belongs to the old one)")
        wanted = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
        try:
            opt.load_state_dict(state["optimizers"][name])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{checkpoint}: optimizer state of group {name!r} does not fit "
                                  f"({exc})") from None
        # under a schedule the saved lr is base x factor(last step): compare bases
        scale = meta.get("lr_factor") or lr_factor(train, meta.get("step", 0))
        for group, values in zip(opt.param_groups, wanted):
            for key, value in values.items():
                saved = group.get(key)
                if key == "lr" and isinstance(saved, float):
                    saved = saved / scale
                    changed = abs(saved - value) > 1e-9 * max(abs(value), 1e-12)
                else:
                    changed = saved != value
                if changed and key not in IMPLEMENTATION_KEYS:
                    notes.append(f"{name}.{key}: {saved!r} -> {value!r}")
                group[key] = value
    return notes
