"""Keep freed tensor memory in the process on CPU (``train.speed.reuse_freed_memory``).

Why: a CPU training step allocates and frees the same large activations every step (several MB
each for an image network). PyTorch's CPU allocator is the C library's ``malloc``, and glibc's malloc
serves a block above its *mmap threshold* with a fresh ``mmap`` and returns it with ``munmap`` when
freed; below the threshold it keeps freed blocks in its heap unless more than the *trim threshold*
lies free at the heap's top. Both thresholds move by themselves as blocks come and go, so which
activations are mapped afresh every step depends on the order of earlier allocations: a step can
take thousands of minor page faults (the kernel zeroing and mapping every page of a fresh block),
and the same step's speed changes from one process to the next (docs/training.md, "The allocator";
measured per pair in benchmarks/README.md).

:func:`apply` fixes both thresholds once, as jemalloc/tcmalloc setups for PyTorch on CPU do by
default: blocks up to :data:`KEEP` come from the heap and freed memory stays there, up to
:data:`KEEP` free at its top, for the next step to reuse. A step then takes almost no page faults,
and the peak resident memory did not grow where it was measured. It changes no value computed.
The settings are process-wide and cannot be undone (glibc has no call that restores its moving
thresholds), which is why the benchmarks compare it in separate processes.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

# glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
KEEP = 1 << 30
"""Bytes: blocks up to this size come from the heap, and up to this much may lie free at its top
(1 GiB, below the C ``int`` that ``mallopt`` takes)."""
KEEP_OLD_GLIBC = 32 << 20
"""The largest mmap threshold glibc before 2.35 accepts (half its 64 MiB heap size)."""
#: environment variables by which a user sets glibc's malloc policy: ``auto`` then leaves it to them
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

#: ``keep``: the threshold in force once fixed; ``tried``: whether this process has tried (``auto`` tries once)
_state: dict[str, int | bool | None] = {"keep": None, "tried": False}


def wanted(device: torch.device, setting: str) -> bool:
    """Whether ``train.speed.reuse_freed_memory`` = ``setting`` asks for it on ``device`` (``auto``: on CPU)."""
    return setting == "on" or (setting == "auto" and device.type == "cpu")


def apply(device: torch.device, setting: str) -> bool:
    """Fix glibc malloc's thresholds for this process when ``setting`` asks for it on ``device``.
    Returns whether they are fixed now. ``auto`` says nothing where it does nothing: elsewhere than
    glibc (musl, macOS, Windows), or where the user set glibc's malloc policy in the environment
    (:data:`USER_SETTINGS`, ``GLIBC_TUNABLES`` with ``glibc.malloc``); ``on`` warns where it can't."""
    if not wanted(device, setting):
        return False
    if _state["keep"] or (_state["tried"] and setting == "auto"):
        return bool(_state["keep"])
    _state["tried"] = True
    users = _user_policy() if setting == "auto" else ""
    if users:
        log.debug("train.speed.reuse_freed_memory=auto: glibc's malloc is set in the environment (%s); left as it is",
                  users)
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        if setting == "on":
            log.warning("train.speed.reuse_freed_memory=on: this C library (%s) is not glibc, so there is "
                        "nothing to set; its own allocator policy applies", platform.libc_ver()[0] or "unknown")
        return False
    for keep in (KEEP, KEEP_OLD_GLIBC):  # glibc < 2.35 refuses an mmap threshold above 32 MiB
        if mallopt(_M_MMAP_THRESHOLD, keep) == 1 and mallopt(_M_TRIM_THRESHOLD, keep) == 1:
            _state["keep"] = keep
            log.debug("glibc malloc: blocks up to %d MiB come from the heap and freed memory stays there for the "
                      "next step (train.speed.reuse_freed_memory)", keep >> 20)
            return True
    if setting == "on":
        log.warning("train.speed.reuse_freed_memory=on: glibc refused mallopt(M_MMAP_THRESHOLD, %d) and (%d); its "
                    "moving thresholds stay", KEEP, KEEP_OLD_GLIBC)
    return False


def _user_policy() -> str:
    """The environment variables by which the user set glibc's malloc policy ('' when none)."""
    found = [name for name in USER_SETTINGS if name in os.environ]
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        found.append("GLIBC_TUNABLES")
    return ", ".join(found)


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    """``mallopt`` of the process's C library when it is glibc, else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt
