"""Logging for cmmkit: one logger per module (``logging.getLogger(__name__)``) under ``cmmkit``.

Messages (notes about data, resume changes, the training announcement) go to standard error
through one handler on the ``cmmkit`` logger, installed on first import of the package so that
library users see them as command users do; :func:`configure` sets its level (``cmmkit -v`` shows
debug messages, ``-q`` only warnings and errors). An application that configures logging itself
can call ``configure(propagate=True)`` (or remove the handler) to route cmmkit's records through
its own handlers. Command results (tables, "wrote FILE") are printed to standard output, not logged.
Progress bars are tqdm's; :func:`no_bar` hides them under ``TQDM_DISABLE=1`` and under ``-q``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

ROOT = "cmmkit"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (pytest's capture, a redirect)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it; the property wins
        pass


def _handler() -> logging.Handler | None:
    return next((h for h in logging.getLogger(ROOT).handlers if isinstance(h, _StderrHandler)), None)


def install() -> None:
    """Give the ``cmmkit`` logger its stderr handler (plain messages) at INFO, once."""
    logger = logging.getLogger(ROOT)
    if _handler() is None:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # not twice when an application also logs to stderr


def configure(verbosity: int = 0, *, propagate: bool | None = None) -> int:
    """Level of cmmkit's messages: ``verbosity`` < 0 warnings and errors only, 0 info, > 0 debug.
    Under torchrun only rank 0 says more than warnings (``RANK``), so messages are not repeated
    per process. Returns the previous level (to restore it)."""
    install()
    logger = logging.getLogger(ROOT)
    previous = logger.level
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    if os.environ.get("RANK", "0") != "0":
        level = max(level, logging.WARNING)
    logger.setLevel(level)
    if propagate is not None:
        logger.propagate = propagate
    return previous


def no_bar(progress: bool) -> bool:
    """tqdm's ``disable=`` for a bar the caller wants when ``progress``: also off under
    ``TQDM_DISABLE=1`` (tqdm reads that variable only when ``disable`` is not passed) and when
    cmmkit's messages are silenced below INFO (``cmmkit -q``: a bar is stderr chatter too)."""
    if not progress or not logging.getLogger(ROOT).isEnabledFor(logging.INFO):
        return True
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no", "off")
