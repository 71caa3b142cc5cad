"""One run folder, one training: a second `cmmkit train`/`--resume` fails at once naming the holder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from cmmkit.config import build_config
from cmmkit.errors import CheckpointError
from cmmkit.runs import resume, train
from cmmkit.training.lock import RunLock

HOLD = "import sys, time; from cmmkit.training.lock import RunLock; RunLock(sys.argv[1]).acquire('holder'); " \
       "print('held', flush=True); time.sleep(120)"


def _holder(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_training_into_a_locked_folder_fails_at_once_naming_the_holder(tmp_path, synthetic_pair):
    run_dir = tmp_path / "r"
    train(build_config("synthetic"), run_dir, progress=False)
    holder = _holder(run_dir)
    try:
        for attempt in (lambda: resume(run_dir, ["train.epochs=2"], progress=False),
                        lambda: train(build_config("synthetic"), run_dir, progress=False)):
            began = time.time()
            with pytest.raises(CheckpointError) as info:
                attempt()
            assert time.time() - began < 2
            assert f"PID {holder.pid} on host {socket.gethostname()}" in str(info.value)
            assert "in use by" in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: the OS dropped the flock, the stale record is reported
    lock = RunLock(run_dir).acquire()
    try:
        assert lock.stale is not None and lock.stale["pid"] == holder.pid
    finally:
        lock.release()
    assert json.loads((run_dir / ".lock").read_text())["released"] is True
    assert resume(run_dir, ["train.epochs=2"], progress=False).meta["epoch"] == 2


def test_new_folder_is_locked_before_training_and_released_after(tmp_path, synthetic_pair, monkeypatch):
    from cmmkit.training.trainer import Trainer

    seen = {}
    original = Trainer.fit

    def fit(self):
        try:
            RunLock(self.run.path).acquire()
        except CheckpointError as exc:
            seen["error"] = str(exc)
        return original(self)

    monkeypatch.setattr(Trainer, "fit", fit)
    train(build_config("synthetic"), tmp_path / "r", progress=False)
    assert f"PID {os.getpid()}" in seen["error"]
    RunLock(tmp_path / "r").acquire().release()  # free again after the run
