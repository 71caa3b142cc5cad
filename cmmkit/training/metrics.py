"""Per-epoch metrics: a CSV file always, TensorBoard event files when tensorboard is installed."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any


class MetricsLog:
    """Appends one row per epoch to ``metrics.csv`` (columns grow if a later row has new keys)."""

    def __init__(self, run_path: Path, tensorboard: str = "auto") -> None:
        self.run_path, self.path = run_path, run_path / "metrics.csv"
        self.tensorboard = tensorboard
        self.writer: Any = None

    def _open_tensorboard(self) -> None:
        """Open the event writer on first use, so nothing is written before the first epoch."""
        if self.tensorboard == "off" or self.writer is not None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            if self.tensorboard == "on":
                warnings.warn("train.tensorboard=on but tensorboard is not installed "
                              "(pip install 'cmmkit[tensorboard]'); logging to metrics.csv only", stacklevel=2)
            self.tensorboard = "off"
            return
        self.writer = SummaryWriter(log_dir=str(self.run_path / "tensorboard"))

    def read(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def write(self, row: dict[str, Any]) -> None:
        rows = self.read()
        fields = list(rows[0].keys()) if rows else []
        fields += [k for k in row if k not in fields]
        if rows and fields != list(rows[0].keys()):
            self._rewrite(rows + [row], fields)
        else:
            with self.path.open("a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields)
                if not rows:
                    w.writeheader()
                w.writerow(_fmt(row))
        self._open_tensorboard()
        if self.writer is not None:
            step = int(row.get("epoch", 0))
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key.replace("_", "/", 1), value, step)
            self.writer.flush()

    def _rewrite(self, rows: list[dict[str, Any]], fields: list[str]) -> None:
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for r in rows:
                w.writerow(_fmt(r))
        tmp.replace(self.path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _fmt(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
