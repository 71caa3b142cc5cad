"""What may change in a run after it was made: ``--resume --set`` (optimizer settings, epochs, ...)
and ``--decode`` (decoding-only options of a modality). Everything else is fixed for a run's life;
these functions compare configs as dotted keys and refuse other changes by name."""

from __future__ import annotations

import fnmatch
from typing import Any

from cmmkit.config import RunConfig, build_config, dump
from cmmkit.errors import ConfigError

#: Settings a resumed run may change (``fnmatch`` patterns over dotted keys). Everything else is
#: fixed for the run's life: the model's shape and the pair (the saved weights were built for
#: them), the data selection, batch size and seeds (the epoch's shuffle and the position inside it),
#: the validation settings (the metrics history stays comparable) and each group's optimizer class
#: (its saved state). Optimizer hyperparameters are written into the restored optimizer.
MAY_CHANGE_ON_RESUME = (
    "train.epochs", "train.device", "train.grid_examples", "train.tensorboard", "train.checkpoint_every_minutes",
    "train.warmup_steps", "train.lr_schedule", "train.min_lr_fraction", "train.decay_fraction", "train.grad_clip_norm", "train.speed.reuse_freed_memory", "train.optimizer.lr", "train.optimizer.kwargs*", "train.group_optimizers*", "data.data_dir", "data.download",
)


def with_decode_settings(saved: RunConfig, settings: list[str]) -> RunConfig:
    """``saved`` with decode-time options of its modalities changed (``x.beam_size=6``: the
    options each modality lists in ``decode_fields``, which shape no weight). Anything else is
    refused by name with the settings that may change."""
    allowed = sorted(f"{side}.{name}" for side in ("x", "y")
                     for name in getattr(getattr(saved.pair, side, None), "decode_fields", ()))
    bad = [s for s in settings if "=" not in s]
    if bad:
        raise ConfigError(f"--decode {bad[0]!r}: expected SIDE.NAME=VALUE, e.g. x.length_penalty=1.0")
    new = build_config(sets=[f"pair.{s}" for s in settings], base=dump(saved))
    changed = [k.removeprefix("pair.") for k, _, _ in differences(dump(saved), dump(new))]
    refused = [k for k in changed if k not in allowed]
    if refused:
        raise ConfigError(f"--decode {', '.join(refused)}: not a decoding setting of this run; the weights were made "
                          f"with it. Decoding settings: {', '.join(allowed) or 'none (its modalities have none)'}")
    return new


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists, scalars and empty dicts are leaves)."""
    if not isinstance(d, dict) or (prefix and not d):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for each leaf that differs; missing leaves are None."""
    fa, fb = flatten(a), flatten(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def resume_changes(saved: RunConfig, new: RunConfig) -> list[tuple[str, Any, Any]]:
    """The settings ``new`` changes in ``saved`` on ``--resume --set``; raises :class:`ConfigError`
    naming every change that a resumed run cannot make (see :data:`MAY_CHANGE_ON_RESUME`)."""
    changes = differences(dump(saved), dump(new))
    refused = [c for c in changes if not any(fnmatch.fnmatchcase(c[0], p) for p in MAY_CHANGE_ON_RESUME)]
    if refused:
        lines = "\n  ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in refused)
        raise ConfigError(
            f"--resume cannot change these settings of a run:\n  {lines}\nThe saved weights, optimizer state and "
            "position in the data were made with the old values (model shape, pair, data, batch size, seeds and "
            "validation settings are fixed for a run's life). Start a new run with --out for them; a resumed run "
            "may change: " + ", ".join(p.rstrip("*") for p in MAY_CHANGE_ON_RESUME))
    return changes
