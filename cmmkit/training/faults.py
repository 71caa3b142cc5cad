"""Fault-injection points for the crash tests (inert unless ``CMMKIT_FAULT_KILL`` is set).

``CMMKIT_FAULT_KILL=NAME:N`` makes the process SIGKILL itself the N-th time (1-based) it reaches
the point ``NAME``, so a test can die at an exact instant that random timing would rarely hit:

* ``checkpoint-tmp``: the new checkpoint is written to its temporary file, not yet renamed;
* ``checkpoint-saved``: the checkpoint is in place, the epoch's metrics row not yet appended;
* ``metrics-row``: half of a metrics row has been written;
* ``step``: a training step has run its backward pass but not its optimizer step.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("CMMKIT_FAULT_KILL", "")
_NAME, _, _COUNT = _SPEC.partition(":")
_seen = 0


def point(name: str) -> None:
    """Die here if the environment asks for it (one string comparison otherwise)."""
    global _seen
    if not _SPEC or name != _NAME:
        return
    _seen += 1
    if _seen == int(_COUNT or 1):
        os.kill(os.getpid(), signal.SIGKILL)
