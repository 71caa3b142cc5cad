"""Stop requests (SIGINT, SIGTERM) as a flag the training loop reads at step boundaries.

``torchrun``, SLURM preemption, ``docker stop`` and Kubernetes send SIGTERM; Ctrl-C sends SIGINT.
Neither may interrupt a training step half-way (a GAN's two optimizers, or an optimizer's update
of some parameters but not others), so the handler only records the signal; the loop finishes
the current step, saves a checkpoint and raises :class:`TrainingInterrupted`. A second Ctrl-C
acts at once, as usual (a KeyboardInterrupt; nothing half-done is saved). Further SIGTERMs are
absorbed: under ``torchrun`` or SLURM every worker receives one from the scheduler and another
from the torchrun agent a moment later, and the second must not kill the checkpoint being
written (the sender's SIGKILL follows anyway if it wants the process gone at once).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped at a step boundary on a signal, after saving a checkpoint.

    ``exit_code`` is the shell convention, 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, signum: int, checkpoint: Path | None, message: str) -> None:
        super().__init__(message)
        self.signum, self.checkpoint, self.message = signum, checkpoint, message

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopFlag:
    """Context manager: while inside, SIGINT/SIGTERM set :attr:`signum` instead of interrupting.

    Outside the main thread (where Python cannot install handlers) it does nothing."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._sigints = 0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            self._sigints += 1
            if self._sigints >= 2:  # the user insists
                self._restore()
                raise KeyboardInterrupt
        if self.signum is None:
            self.signum = signum

    def request(self, signum: int) -> None:
        """Ask the loop to stop at the next step boundary (as the signal would; e.g. from another rank)."""
        self.signum = signum

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()
