"""Helpers for the training fault tests: a tiny LFW run of ``cmmkit train`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from cmmkit.training.checkpoint import load_checkpoint

#: 32 training faces in batches of 8: 4 steps per epoch, a checkpoint after every step.
TINY = ["--set", "pair.train_size=32", "--set", "pair.val_size=8", "--set", "train.batch_size=8",
        "--set", "train.grid_examples=4", "--set", "train.tensorboard=off",
        "--set", "train.checkpoint_every_minutes=0.000001"]


def train_args(fx: dict, out: Path, epochs: int, *extra: str) -> list[str]:
    return ["train", "--pair", "lfw_faces_attrs", "--preset", "tiny", "--data-dir", str(fx["folder"]), *TINY,
            "--epochs", str(epochs), "--out", str(out), "--no-progress", *extra]


def env(cache: Path, fault: str | None = None) -> dict[str, str]:
    """One thread for every library, as the in-process reference runs take with
    ``torch.set_num_threads(1)``: an inherited ``MKL_NUM_THREADS=2`` made MKL's matmuls sum in another
    order in the subprocesses only, and the weights differed from the reference's by 1e-7."""
    e = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CMMKIT_CACHE": str(cache),
         "PYTHONUNBUFFERED": "1"}
    e.pop("CMMKIT_FAULT_KILL", None)
    if fault:
        e["CMMKIT_FAULT_KILL"] = fault
    return e


def start(args: list[str], cache: Path, fault: str | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cmmkit.cli", *args], env=env(cache, fault),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(args: list[str], cache: Path, fault: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmmkit.cli", *args], env=env(cache, fault), capture_output=True,
                          text=True, timeout=timeout)


def wait_for_training(proc: subprocess.Popen, checkpoint: Path, after: float, timeout: float = 60) -> bool:
    """Wait until ``checkpoint`` was written after ``after`` (the run is past start-up); False if
    the process ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if checkpoint.stat().st_mtime > after:
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"no checkpoint at {checkpoint} after {timeout} s")


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoint.safetensors")[0]


def weight_differences(a: Path, b: Path) -> dict[str, str]:
    """The tensors whose values differ between two runs' checkpoints, with how far and where (empty:
    equal bit for bit), so a failed equality says which weights moved and by how much."""
    wa, wb = weights(a), weights(b)
    out = {k: "missing in one run" for k in wa.keys() ^ wb.keys()}
    for k in wa.keys() & wb.keys():
        if not torch.equal(wa[k], wb[k]):
            d = (wa[k].double() - wb[k].double()).abs()
            out[k] = f"{int((d > 0).sum())}/{d.numel()} differ, max {float(d.max()):.3g}"
    return out
