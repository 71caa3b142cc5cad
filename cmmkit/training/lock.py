"""One owner per run folder: an advisory ``flock`` on ``RUN/.lock``, held for the process's life.

The kernel drops a ``flock`` when its holder dies (even by SIGKILL), so a lock can never outlive
its process on a local file system. The file is never deleted (deleting a lock file races with a
process that has just opened it); it keeps the last holder's PID, host and start time, so

* a second ``cmmkit train --out RUN`` or ``--resume RUN`` fails at once naming the live holder, and
* a lock file whose holder died without releasing it (killed, machine rebooted) is recognised as
  stale, reported, and taken over.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from cmmkit.errors import CheckpointError

log = logging.getLogger(__name__)

LOCK = ".lock"


def _holder_text(info: dict) -> str:
    if not info:
        return "another process (no holder recorded)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("time", 0)))
    return f"PID {info.get('pid')} on host {info.get('host')} (since {since}, `{info.get('command', '?')}`)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Exclusive, non-blocking lock on a run folder. Use :meth:`acquire` (or ``with``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.fd: int | None = None
        self.stale: dict | None = None  # the previous holder's record, when it died holding the folder

    def read_holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self, command: str = "cmmkit train") -> RunLock:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise CheckpointError(f"cannot create the run folder's lock {self.path}: {exc.strerror or exc} "
                                  "(read-only or full file system?)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise CheckpointError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
            holder = self.read_holder()
            hint = ""
            if holder.get("host") == socket.gethostname() and holder.get("pid") and not _pid_alive(holder["pid"]):
                hint = (" That process no longer runs, so a child it started (e.g. a data-loader worker) still "
                        "holds the lock; stop it first.")
            raise CheckpointError(f"{self.folder} is in use by {_holder_text(holder)}: one run folder takes one "
                                  f"training at a time. Wait for it to finish or stop it, or choose another "
                                  f"--out folder.{hint}") from None
        previous = self.read_holder()
        if previous and not previous.get("released"):
            self.stale = previous
            log.warning("%s: the previous holder, %s, stopped without releasing the run folder (killed or "
                        "crashed); taking it over", self.folder, _holder_text(previous))
        record = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(), "command": command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        """Mark the record released (a clean exit) and drop the lock."""
        if self.fd is None:
            return
        try:
            record = {**self.read_holder(), "released": True}
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, json.dumps(record).encode(), 0)
        except OSError:
            pass
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()
