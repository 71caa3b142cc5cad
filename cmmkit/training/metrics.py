"""Per-epoch metrics: a CSV file always, TensorBoard event files when tensorboard is installed.

The checkpoint is the run's one source of truth: it holds every epoch's row (``history``). The
trainer saves the checkpoint first and appends the row to ``metrics.csv`` second, and whenever a
run (re)starts, :meth:`MetricsLog.reset` rewrites ``metrics.csv`` atomically from the checkpoint's
history. So a crash at any instant (mid-row, between checkpoint and row, mid-epoch) can neither
duplicate nor drop an epoch: the next ``--resume`` repairs the file, and TensorBoard's events
after the last checkpointed epoch are purged (``purge_step``).
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from pathlib import Path
from typing import Any

from cmmkit.errors import CheckpointError
from cmmkit.training import faults


class MetricsLog:
    """Appends one row per epoch to ``metrics.csv`` (columns grow if a later row has new keys)."""

    def __init__(self, run_path: Path, tensorboard: str = "auto") -> None:
        self.run_path, self.path = run_path, run_path / "metrics.csv"
        self.tensorboard = tensorboard
        self.writer: Any = None
        self.rows: list[dict[str, Any]] = []
        self._purge_step: int | None = None

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
        self.writer = SummaryWriter(log_dir=str(self.run_path / "tensorboard"), purge_step=self._purge_step)

    def read(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def history_until(self, epoch: int) -> list[dict[str, Any]]:
        """metrics.csv's rows up to ``epoch`` (numbers parsed): the history of a checkpoint written
        before checkpoints kept it."""
        def number(v: str) -> Any:
            for kind in (int, float):
                try:
                    return kind(v)
                except (TypeError, ValueError):
                    pass
            return v
        rows = [{k: number(v) for k, v in r.items() if v not in (None, "")} for r in self.read()]
        return [r for r in rows if isinstance(r.get("epoch"), int) and r["epoch"] <= epoch]

    def reset(self, history: list[dict[str, Any]]) -> None:
        """Make ``metrics.csv`` exactly ``history`` (the checkpoint's rows), atomically."""
        self.rows = [dict(r) for r in history]
        self._purge_step = int(history[-1]["epoch"]) + 1 if history else 1
        self._rewrite()

    def _rewrite(self) -> None:
        if not self.rows:
            self.path.unlink(missing_ok=True)
            return
        if self.path.exists() and self._text(self.rows) == self.path.read_text():
            return
        tmp = self.path.with_suffix(".csv.tmp")
        try:
            tmp.write_text(self._text(self.rows))
            os.replace(tmp, self.path)
        except OSError as exc:
            raise CheckpointError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    @staticmethod
    def _fields(rows: list[dict[str, Any]]) -> list[str]:
        fields: list[str] = []
        for r in rows:
            fields += [k for k in r if k not in fields]
        return fields

    def _text(self, rows: list[dict[str, Any]], header: bool = True) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self._fields(self.rows), lineterminator="\n")
        if header:
            w.writeheader()
        for r in rows:
            w.writerow(_fmt(r))
        return buf.getvalue()

    def write(self, row: dict[str, Any]) -> None:
        """Append ``row`` (already in the checkpoint's history)."""
        grows = bool(self.rows) and any(k not in self._fields(self.rows) for k in row)
        self.rows.append(dict(row))
        try:
            if grows or not self.path.exists():
                self._rewrite()
            else:
                text = self._text([row], header=False)
                with self.path.open("a", newline="") as f:
                    f.write(text[: len(text) // 2])
                    f.flush()
                    faults.point("metrics-row")
                    f.write(text[len(text) // 2:])
        except OSError as exc:
            raise CheckpointError(f"cannot append to {self.path}: {exc.strerror or exc}") from None
        self._open_tensorboard()
        if self.writer is not None:
            step = int(row.get("epoch", 0))
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key.replace("_", "/", 1), value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _fmt(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
