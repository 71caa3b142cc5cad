"""examples/cgan_sweep.sh passes its knobs to cmmkit (a stub cmmkit on PATH records the calls)."""

import os
import stat
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "cgan_sweep.sh"
STUB = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
if [ "$1" = train ]; then
  while [ $# -gt 0 ]; do [ "$1" = --out ] && mkdir -p "$2" && touch "$2/checkpoint.safetensors"; shift; done
fi
"""


def _sweep(tmp_path: Path, **env: str) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "cmmkit"
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path / "calls.txt"
    calls.unlink(missing_ok=True)
    full = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls), **env}
    subprocess.run(["bash", str(SCRIPT), "1", str(tmp_path / "sweep")], check=True, env=full, cwd=tmp_path)
    return calls.read_text().splitlines()


def test_grid_mismatch_and_judge_reach_the_commands(tmp_path):
    calls = _sweep(tmp_path, LRS="0.0001 0.0002", STDS="0.05", MISMATCH="0.3", JUDGE="runs/j")
    trains = [c for c in calls if c.startswith("train")]
    evals = [c for c in calls if c.startswith("evaluate")]
    assert len(trains) == 2 and len(evals) == 2
    assert all("model.mismatch_weight=0.3" in c and "model.init_std=0.05" in c and "--epochs 1" in c for c in trains)
    assert "train.group_optimizers.discriminator.lr=0.0001" in trains[0]
    assert "train.group_optimizers.generator.lr=0.0002" in trains[1]
    assert all("--split val" in c and "--judge runs/j" in c for c in evals)
    report = [c for c in calls if c.startswith("report")]
    assert report and report[0].count("/sweep/lr") == 2 and report[0].endswith("sweep.md")


def test_defaults_leave_mismatch_to_the_model_and_skip_the_judge(tmp_path):
    calls = _sweep(tmp_path, LRS="0.0002", STDS="0.02")
    assert not any("mismatch_weight" in c for c in calls)
    assert not any("--judge" in c for c in calls)
    # a setting already trained is evaluated again but not retrained
    again = _sweep(tmp_path, LRS="0.0002", STDS="0.02")
    assert [c.split()[0] for c in again] == ["evaluate", "report"]
