import csv

import pytest
import torch
from PIL import Image

from cmmkit.config import build_config
from cmmkit.errors import CheckpointError
from cmmkit.runs import load_run, resume, train
from cmmkit.training.checkpoint import load_checkpoint


def _weights(run_path):
    weights, _, _ = load_checkpoint(run_path / "checkpoint.safetensors")
    return weights


def test_two_epochs_straight_equal_one_epoch_resume_one_epoch(tmp_path, synthetic_pair):
    straight = train(build_config("synthetic", sets=["train.epochs=2"]), tmp_path / "a", progress=False)
    train(build_config("synthetic", sets=["train.epochs=1"]), tmp_path / "b", progress=False)
    resumed = resume(tmp_path / "b", ["train.epochs=2"], progress=False)
    wa, wb = _weights(straight.path), _weights(resumed.path)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    rows_a = list(csv.DictReader(open(straight.path / "metrics.csv")))
    rows_b = list(csv.DictReader(open(resumed.path / "metrics.csv")))
    assert [r["val_bound"] for r in rows_a] == [r["val_bound"] for r in rows_b]
    # and a different seed really gives different weights (the comparison above can fail)
    other = train(build_config("synthetic", sets=["train.epochs=2", "train.seed=5"]), tmp_path / "c", progress=False)
    assert not all(torch.equal(wa[k], _weights(other.path)[k]) for k in wa)


def test_run_folder_has_config_checkpoint_metrics_and_preview_png(tmp_path, synthetic_pair):
    run = train(build_config("synthetic", sets=["train.epochs=2"]), tmp_path / "r", progress=False)
    text = (run.path / "config.yaml").read_text()
    assert text.startswith("# The effective config") and "\npair:\n" in text
    rows = list(csv.DictReader(open(run.path / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "val_bound", "val_bound_bits_per_dim", "val_kl", "images_per_second"} <= set(rows[0])
    img = Image.open(run.path / "samples" / "epoch_002.png")
    # 8 validation examples -> 2 rows (real, generated) of 8 16x16 images with 2px padding
    assert img.size == (8 * 18 + 2, 2 * 18 + 2)


def test_training_lowers_the_loss(tmp_path, synthetic_pair):
    run = train(build_config("synthetic", sets=["train.epochs=6", "pair.n=200"]), tmp_path / "r", progress=False)
    rows = list(csv.DictReader(open(run.path / "metrics.csv")))
    assert float(rows[-1]["val_bound"]) > float(rows[0]["val_bound"]) + 100


def test_ctrl_c_saves_at_the_step_boundary_and_resumes(tmp_path, synthetic_pair, monkeypatch, capsys):
    import os
    import signal

    from cmmkit.training.signals import TrainingInterrupted
    from cmmkit.training.trainer import Trainer

    calls = {"n": 0}
    original = Trainer.train_step

    def flaky(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # arrives inside the step: the step still completes
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", flaky)
    with pytest.raises(TrainingInterrupted) as info:
        train(build_config("synthetic", sets=["train.epochs=2"]), tmp_path / "r", progress=False)
    assert info.value.exit_code == 130
    assert "Resume with: cmmkit train --resume" in str(info.value)
    _, _, meta = load_checkpoint(tmp_path / "r" / "checkpoint.safetensors")
    assert (meta["epoch"], meta["batch_in_epoch"], meta["step"]) == (0, 3, 3)
    monkeypatch.setattr(Trainer, "train_step", original)
    run = resume(tmp_path / "r", progress=False)
    assert run.meta["epoch"] == 2
    straight = train(build_config("synthetic", sets=["train.epochs=2"]), tmp_path / "s", progress=False)
    wa, wb = _weights(run.path), _weights(straight.path)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_raw_keyboard_interrupt_inside_a_step_saves_nothing_half_done(tmp_path, synthetic_pair, monkeypatch, capsys):
    from cmmkit.training.trainer import Trainer

    calls = {"n": 0}
    original = Trainer.train_step

    def flaky(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as a second Ctrl-C would: the step is half done
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(build_config("synthetic", sets=["train.epochs=2"]), tmp_path / "r", progress=False)
    assert "inside a step" in capsys.readouterr().err
    _, _, meta = load_checkpoint(tmp_path / "r" / "checkpoint.safetensors")
    assert (meta["epoch"], meta["batch_in_epoch"]) == (0, 0)  # the step-0 checkpoint, untouched


def test_new_run_refuses_to_overwrite_an_existing_run(tmp_path, synthetic_pair):
    train(build_config("synthetic"), tmp_path / "r", progress=False)
    before = (tmp_path / "r" / "checkpoint.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(build_config("synthetic"), tmp_path / "r", progress=False)
    assert (tmp_path / "r" / "checkpoint.safetensors").read_bytes() == before


def test_loaded_run_generates_user_objects(tmp_path, synthetic_pair):
    train(build_config("synthetic"), tmp_path / "r", progress=False)
    run = load_run(tmp_path / "r")
    images = run.generate([{"red": 1}, {"red": -1, "square": 1}])
    assert [im.size for im in images] == [(16, 16), (16, 16)]
    assert len(run.generate({"red": 1}, noise_scale=1.0, n=3)) == 3
    with pytest.raises(Exception, match="unknown attribute 'rde'. Did you mean 'red'"):
        run.generate({"rde": 1})


def test_optimizer_is_configurable(tmp_path, synthetic_pair):
    run = train(build_config("synthetic", sets=["train.optimizer.name=Adam", "train.optimizer.lr=0.001"]),
                tmp_path / "r", progress=False)
    _, state, _ = load_checkpoint(run.path / "checkpoint.safetensors")
    assert "exp_avg" in state["optimizers"]["main"]["state"][0]
    with pytest.raises(Exception, match="is not a torch.optim optimizer"):
        train(build_config("synthetic", sets=["train.optimizer.name=Adamm"]), tmp_path / "s", progress=False)


def test_a_second_sigterm_is_absorbed_but_a_second_ctrl_c_interrupts(tmp_path, synthetic_pair, monkeypatch):
    """torchrun's agent re-sends SIGTERM to workers a scheduler already signalled: the checkpoint
    must still be written. A user pressing Ctrl-C twice gets the interrupt at once."""
    import os
    import signal

    from cmmkit.training.signals import StopFlag, TrainingInterrupted
    from cmmkit.training.trainer import Trainer

    original = Trainer.train_step

    def twice(self, batch):
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", twice)
    with pytest.raises(TrainingInterrupted) as info:
        train(build_config("synthetic", sets=["train.epochs=2"]), tmp_path / "r", progress=False)
    assert info.value.exit_code == 143
    assert load_checkpoint(tmp_path / "r" / "checkpoint.safetensors")[2]["step"] == 3
    flag = StopFlag()
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    with flag, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.signum == signal.SIGINT
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # the handler found is put back
