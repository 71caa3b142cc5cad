"""Non-finite loss or weights stop the run naming epoch and step, keep the last good checkpoint,
exit non-zero; generate/evaluate refuse a checkpoint with non-finite weights."""

from __future__ import annotations

import pytest
import torch

from cmmkit.cli import main
from cmmkit.config import build_config
from cmmkit.errors import CheckpointError
from cmmkit.runs import load_run, resume, train
from cmmkit.training.checkpoint import load_checkpoint, nonfinite, save_checkpoint
from cmmkit.training.trainer import TrainingDiverged


def test_huge_learning_rate_stops_with_epoch_and_step_and_keeps_a_finite_checkpoint(tmp_path, synthetic_pair):
    with pytest.raises(TrainingDiverged) as info:
        train(build_config("synthetic", sets=["train.optimizer.lr=1e4", "train.epochs=3"]), tmp_path / "r",
              progress=False)
    msg = str(info.value)
    assert "non-finite loss at epoch 1, batch" in msg and ", step " in msg
    assert "kept unchanged" in msg and "--set train.optimizer.lr=1000" in msg
    weights, _, meta = load_checkpoint(tmp_path / "r" / "checkpoint.safetensors")
    assert not nonfinite(weights) and meta["step"] == 0  # the step-0 checkpoint, not the NaN weights
    assert not (tmp_path / "r" / "metrics.csv").exists()
    # the kept checkpoint continues with a sane rate
    assert resume(tmp_path / "r", ["train.optimizer.lr=0.01"], progress=False).meta["epoch"] == 3


def test_divergence_mid_run_leaves_the_last_good_checkpoint_byte_identical(tmp_path, synthetic_pair, monkeypatch):
    from cmmkit.training.trainer import Trainer

    ck = tmp_path / "r" / "checkpoint.safetensors"
    good = {}
    original = Trainer.train_step

    def poisoned(self, batch):
        logs = original(self, batch)
        if self.step == 5:  # the 6th step (epoch 2, batch 2; 4 batches per epoch): its loss is NaN
            good["bytes"] = ck.read_bytes()  # the epoch-1 checkpoint
            logs["loss"] = logs["loss"] * float("nan")
        return logs

    monkeypatch.setattr(Trainer, "train_step", poisoned)
    with pytest.raises(TrainingDiverged, match=r"non-finite loss at epoch 2, batch 2, step 6\b.*\(epoch 1, batch 0, step 4\)"):
        train(build_config("synthetic", sets=["train.epochs=3"]), tmp_path / "r", progress=False)
    assert ck.read_bytes() == good["bytes"]
    assert len((tmp_path / "r" / "metrics.csv").read_text().splitlines()) == 2  # header + epoch 1


def test_cli_exits_3_on_divergence(tmp_path, synthetic_pair, capsys):
    from test_inputs import synthetic_args

    assert main(synthetic_args(tmp_path / "r", "--set", "train.optimizer.lr=1e4")) == 3
    err = capsys.readouterr().err
    assert "training diverged" in err and "Traceback" not in err


def test_generate_and_evaluate_refuse_non_finite_weights(tmp_path, synthetic_pair, capsys):
    train(build_config("synthetic"), tmp_path / "r", progress=False)
    ck = tmp_path / "r" / "checkpoint.safetensors"
    weights, state, meta = load_checkpoint(ck)
    key = next(k for k, v in weights.items() if v.is_floating_point())
    weights[key] = weights[key].clone()
    weights[key].view(-1)[0] = float("nan")
    save_checkpoint(ck, weights, state, meta)
    with pytest.raises(CheckpointError, match=f"NaN or infinite values \\({key}"):
        load_run(tmp_path / "r")
    assert main(["generate", str(tmp_path / "r"), "--attr", "red=1", "-o", str(tmp_path / "g.png")]) == 2
    assert "NaN or infinite" in capsys.readouterr().err and not (tmp_path / "g.png").exists()
    with pytest.raises(CheckpointError, match="cannot resume"):
        resume(tmp_path / "r", ["train.epochs=2"], progress=False)


def test_nonfinite_reads_all_tensors_with_one_sync():
    ts = {"a": torch.ones(3), "b": torch.tensor([1.0, float("inf")]), "c": torch.arange(3)}
    assert nonfinite(ts) == ["b"]
