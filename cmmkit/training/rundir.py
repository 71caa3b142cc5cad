"""A run folder: the effective config, a checkpoint, metrics and preview PNGs.

    RUN/config.yaml               effective config (validated on resume and load; see below)
    RUN/checkpoint.safetensors    latest checkpoint (weights, optimizer, RNG, metrics history, config)
    RUN/metrics.csv               one row per epoch (rewritten from the checkpoint on resume)
    RUN/samples/epoch_NNN.png     x generated from validation y after each epoch
    RUN/tensorboard/              event files, when tensorboard is installed
    RUN/.lock                     flock of the one process training in the folder (see lock.py)

The checkpoint's copy of the config is authoritative; ``config.yaml`` is its readable mirror.
On resume and load, ``config.yaml`` is parsed and validated; if it differs from the checkpoint's
copy (a user edit), the command refuses and names the differing keys, since editing it cannot
change a run (``cmmkit train --resume RUN --set KEY=VALUE`` changes what may change). A missing
``config.yaml`` is rewritten from the checkpoint on resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cmmkit.data.download import atomic_path
from cmmkit.errors import CheckpointError, CmmkitError
from cmmkit.training.checkpoint import (
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from cmmkit.training.lock import LOCK, RunLock

CHECKPOINT = "checkpoint.safetensors"
CONFIG = "config.yaml"
_CONFIG_HEADER = ("# The effective config of this run, mirrored from its checkpoint. Editing it changes nothing:\n"
                  "# cmmkit refuses a config.yaml that differs from the checkpoint. Change what may change on\n"
                  "# resume with `cmmkit train --resume RUN --set KEY=VALUE` (see docs/training.md).\n")


@dataclass
class RunDir:
    path: Path
    lock: RunLock | None = field(default=None, repr=False)

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @classmethod
    def new(cls, path: Path) -> RunDir:
        """A run folder to be created (nothing is written yet); refuses to reuse an existing run."""
        if (path / CHECKPOINT).exists():
            raise CheckpointError(f"{path} already holds a run; continue it with `cmmkit train --resume {path}` "
                                  "or choose another --out folder")
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        path = Path(path)
        if not path.is_dir():
            raise CheckpointError(f"{path}: no such run folder")
        if not (path / CHECKPOINT).is_file():
            if (path / LOCK).is_file():
                holder = RunLock(path).read_holder()
                who = f" (PID {holder.get('pid')} on {holder.get('host')})" if holder else ""
                raise CheckpointError(
                    f"{path}: no checkpoint yet: the training that created this folder{who} stopped or is still "
                    "starting before its first checkpoint (written before the first step), so nothing was trained "
                    f"and nothing is lost. Start it again with the same `cmmkit train ... --out {path}`.")
            raise CheckpointError(f"{path}: not a cmmkit run (no {CHECKPOINT}); expected a folder written by "
                                  "`cmmkit train`")
        return cls(path)

    def acquire(self, command: str) -> RunDir:
        """Become the folder's one owner (or fail naming the owner), then remove stale temporaries."""
        self.lock = RunLock(self.path).acquire(command)
        remove_stale_temporaries(self.path)
        return self

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def write_config(self, config: dict[str, Any]) -> None:
        try:
            with atomic_path(self.config_file, prefix=".config.", suffix=".yaml") as tmp, open(tmp, "w") as f:
                f.write(_CONFIG_HEADER)
                yaml.safe_dump(config, f, sort_keys=False)
        except OSError as exc:
            raise CheckpointError(f"cannot write {self.config_file}: {exc.strerror or exc} "
                                  "(read-only or full file system?)") from None

    def read_config(self) -> dict[str, Any] | None:
        """``config.yaml`` parsed (None when absent); a clear error when unreadable."""
        try:
            text = self.config_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{self.config_file}: cannot read it as UTF-8 text ({exc})") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CheckpointError(f"{self.config_file}: not valid YAML ({exc}); it mirrors the checkpoint's "
                                  f"config: delete it and `cmmkit train --resume {self.path}` rewrites it") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{self.config_file}: expected a mapping with sections pair/model/data/train, "
                                  f"got {type(data).__name__}")
        return data

    def check_config(self, saved: dict[str, Any], previous: dict[str, Any] | None = None) -> bool:
        """Validate ``config.yaml`` against ``saved`` (the checkpoint's config). Returns True when
        the file needs (re)writing: it is absent, or it is ``previous`` (the config this run had
        before its last ``--resume --set``, left by a kill between checkpoint and config write)."""
        from cmmkit.config import dump, validate
        from cmmkit.config_changes import differences

        raw = self.read_config()
        if raw is None:
            return True
        try:
            on_disk = dump(validate(raw))
        except CmmkitError as exc:
            raise CheckpointError(f"{self.config_file} does not validate: {exc}\nIt mirrors the config saved in "
                                  f"the checkpoint; restore it (delete it and resume rewrites it)") from None
        expected = dump(validate(saved))
        if on_disk == expected:
            return False
        if previous is not None and on_disk == dump(validate(previous)):
            return True
        diff = differences(on_disk, expected)
        lines = "\n  ".join(f"{k}: {a!r} in config.yaml, {b!r} in the checkpoint" for k, a, b in diff[:10])
        raise CheckpointError(
            f"{self.config_file} was edited: it differs from the config saved in {self.checkpoint}:\n  {lines}\n"
            "Editing config.yaml cannot change a run. Undo the edit (or delete the file; resume rewrites it), and "
            f"change what may change with `cmmkit train --resume {self.path} --set KEY=VALUE` "
            "(epochs, optimizer lr/kwargs, device, ...; see docs/training.md).")

    def save_checkpoint(self, model: Any, state: dict[str, Any], meta: dict[str, Any]) -> Path:
        save_checkpoint(self.checkpoint, model.state_dict(), state, meta)
        return self.checkpoint

    def load_checkpoint(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        return load_checkpoint(self.checkpoint)
