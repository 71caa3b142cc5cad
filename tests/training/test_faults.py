"""Fault injection: SIGKILL `cmmkit train` at exact and at random instants, resume each time, and
check that nothing is lost or duplicated (issue 12).

Exact instants use the ``CMMKIT_FAULT_KILL`` points of :mod:`cmmkit.training.faults` (inside a
checkpoint write, between the checkpoint and the metrics row, half-way through a metrics row,
between a backward pass and its optimizer step); random instants kill after a random delay once
training has started.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import time

import pytest
import torch
from lfw_fixtures import make_lfw_fixture
from runner import run, start, train_args, wait_for_training, weight_differences

import cmmkit
from cmmkit.cli import main

#: Random-instant kills after the exact ones; docs/training.md reports a run with more
#: (CMMKIT_FAULT_RANDOM_KILLS=20 CMMKIT_FAULT_EPOCHS=12).
RANDOM_KILLS = int(os.environ.get("CMMKIT_FAULT_RANDOM_KILLS", "2"))
EPOCHS = int(os.environ.get("CMMKIT_FAULT_EPOCHS", "4"))  # x 4 steps


@pytest.mark.slow
def test_sigkill_at_any_instant_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    fx = make_lfw_fixture(tmp_path / "lfw", rows=48, missing=1)
    cache = tmp_path / "cache"
    monkeypatch.setenv("CMMKIT_CACHE", str(cache))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses (OMP_NUM_THREADS=1), so the weights can be equal bit for bit
    try:  # the uninterrupted reference, in this process (saves a start-up); builds the faces cache
        assert main(train_args(fx, tmp_path / "ref", EPOCHS)) == 0
    finally:
        torch.set_num_threads(threads)

    out = tmp_path / "run"
    ck = out / "checkpoint.safetensors"
    exact = ["checkpoint-tmp:3", "checkpoint-saved:1", "metrics-row:1", "step:2"]
    rng = random.Random(12)
    kills, resumes = 0, 0
    schedule = exact + [None] * RANDOM_KILLS  # None: a random instant
    for fault in schedule:
        resuming = ck.exists()
        args = ["train", "--resume", str(out), "--no-progress"] if resuming else train_args(fx, out, EPOCHS)
        began = time.time()
        proc = start(args, cache, fault)
        if fault is None and wait_for_training(proc, ck, began):
            time.sleep(rng.uniform(0.0, 0.1))
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:  # finished before the kill: nothing left to break
            break
        assert proc.returncode == -signal.SIGKILL, err
        kills += 1
        resumes += resuming
        assert "Traceback" not in err, err
    final = run(["train", "--resume", str(out), "--no-progress"], cache)
    assert final.returncode == 0, final.stderr
    assert kills >= len(exact), f"only {kills} kills landed"

    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["epoch"] for r in rows] == [str(e) for e in range(1, EPOCHS + 1)]
    ref_rows = list(csv.DictReader(open(tmp_path / "ref" / "metrics.csv")))
    for key in ("step", "train_loss", "train_kl", "val_bound"):  # the resumed epochs' means are exact
        assert [r[key] for r in rows] == [r[key] for r in ref_rows], key
    assert cmmkit.load_run(out).meta["epoch"] == EPOCHS
    assert not (moved := weight_differences(out, tmp_path / "ref")), moved
    assert {p.name for p in out.iterdir()} == {".lock", "checkpoint.safetensors", "config.yaml", "metrics.csv",
                                               "samples"}  # no temporary file left by any kill
    print(f"kills {kills}, resumes after a kill {resumes + 1}, epochs lost or duplicated 0")
