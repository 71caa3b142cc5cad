"""A run folder: the effective config, a checkpoint, metrics and preview PNGs.

    RUN/config.yaml               effective config (re-validated on resume and load)
    RUN/checkpoint.safetensors    latest checkpoint (weights, optimizer, RNG, metadata)
    RUN/metrics.csv               one row per epoch
    RUN/samples/epoch_NNN.png     x generated from validation y after each epoch
    RUN/tensorboard/              event files, when tensorboard is installed
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cmmkit.errors import CheckpointError
from cmmkit.training.checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT = "checkpoint.safetensors"
CONFIG = "config.yaml"


@dataclass
class RunDir:
    path: Path

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @classmethod
    def new(cls, path: Path) -> "RunDir":
        """A run folder to be created (nothing is written yet); refuses to reuse an existing run."""
        if (path / CHECKPOINT).exists():
            raise CheckpointError(f"{path} already holds a run; continue it with `cmmkit train --resume {path}` "
                                  "or choose another --out folder")
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        path = Path(path)
        if not path.is_dir():
            raise CheckpointError(f"{path}: no such run folder")
        if not (path / CHECKPOINT).is_file():
            raise CheckpointError(f"{path}: not a cmmkit run (no {CHECKPOINT}); expected a folder written by "
                                  "`cmmkit train`")
        return cls(path)

    def write_config(self, config: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".yaml", dir=self.path)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(config, f, sort_keys=False)
        os.replace(tmp, self.path / CONFIG)

    def save_checkpoint(self, model: Any, state: dict[str, Any], meta: dict[str, Any]) -> Path:
        save_checkpoint(self.checkpoint, model.state_dict(), state, meta)
        return self.checkpoint

    def load_checkpoint(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        return load_checkpoint(self.checkpoint)
