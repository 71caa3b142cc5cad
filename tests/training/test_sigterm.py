"""SIGTERM (torchrun, SLURM preemption, docker stop) stops `cmmkit train` at a step boundary with
a checkpoint and exit code 143; resuming gives the uninterrupted run's weights."""

from __future__ import annotations

import signal
import time

import torch
from lfw_fixtures import make_lfw_fixture
from runner import run, start, train_args, wait_for_training, weight_differences

from cmmkit.cli import main
from cmmkit.training.checkpoint import load_checkpoint

EPOCHS = 6


def test_sigterm_saves_at_a_step_boundary_exits_143_and_resumes_exactly(tmp_path, monkeypatch):
    fx = make_lfw_fixture(tmp_path / "lfw", rows=48, missing=1)
    cache = tmp_path / "cache"
    monkeypatch.setenv("CMMKIT_CACHE", str(cache))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # the uninterrupted reference (and the faces cache)
        assert main(train_args(fx, tmp_path / "ref", EPOCHS, "--set", "train.checkpoint_every_minutes=0")) == 0
    finally:
        torch.set_num_threads(threads)

    out = tmp_path / "run"
    ck = out / "checkpoint.safetensors"
    began = time.time()
    proc = start(train_args(fx, out, EPOCHS, "--set", "train.checkpoint_every_minutes=0"), cache)
    assert wait_for_training(proc, ck, began)  # the step-0 checkpoint: the run is starting
    while not (out / "metrics.csv").exists():  # an epoch is done: the loop (and its handler) runs
        assert proc.poll() is None
        time.sleep(0.01)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert time.time() - sent < 10, "did not stop promptly"
    assert "Stopped by SIGTERM at a step boundary" in err and f"cmmkit train --resume {out}" in err
    assert "Traceback" not in err
    _, _, meta = load_checkpoint(ck)
    assert 0 < meta["step"] < EPOCHS * 4, meta["step"]  # a mid-run step, not the start or the end
    assert meta["step"] == meta["epoch"] * 4 + meta["batch_in_epoch"]

    done = run(["train", "--resume", str(out), "--no-progress"], cache)
    assert done.returncode == 0, done.stderr
    assert not (moved := weight_differences(out, tmp_path / "ref")), moved
