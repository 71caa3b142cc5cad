"""`--resume --set` applies what it records; config.yaml is validated, never silently ignored or
overwritten; metrics.csv is rebuilt from the checkpoint's history; resumed epochs' means are exact."""

from __future__ import annotations

import csv

import pytest
import torch

from cmmkit.config import build_config
from cmmkit.errors import CheckpointError, ConfigError
from cmmkit.runs import load_run, resume, train
from cmmkit.training.checkpoint import load_checkpoint


def _state(run):
    return load_checkpoint(run / "checkpoint.safetensors")[1]


def test_resume_set_writes_optimizer_hyperparameters_into_the_restored_optimizer(tmp_path, synthetic_pair, capsys):
    train(build_config("synthetic", sets=["train.optimizer.name=Adam", "train.optimizer.lr=0.001"]),
          tmp_path / "r", progress=False)
    resume(tmp_path / "r", ["train.epochs=2", "train.optimizer.lr=0.0005", "train.optimizer.kwargs.betas=[0.5, 0.9]",
                            "train.optimizer.kwargs.weight_decay=0.01"], progress=False)
    err = capsys.readouterr().err
    assert "optimizer main.lr: 0.001 -> 0.0005 (written into the restored optimizer)" in err
    group = _state(tmp_path / "r")["optimizers"]["main"]["param_groups"][0]
    assert group["lr"] == 0.0005 and list(group["betas"]) == [0.5, 0.9] and group["weight_decay"] == 0.01
    assert "exp_avg" in _state(tmp_path / "r")["optimizers"]["main"]["state"][0]  # the state was restored
    assert load_run(tmp_path / "r").config.train.optimizer.lr == 0.0005
    # a plain resume keeps them (they come from the recorded config, not the old optimizer state)
    resume(tmp_path / "r", ["train.epochs=3"], progress=False)
    group = _state(tmp_path / "r")["optimizers"]["main"]["param_groups"][0]
    assert group["lr"] == 0.0005 and list(group["betas"]) == [0.5, 0.9] and group["weight_decay"] == 0.01


def test_resume_with_a_new_lr_equals_training_with_it_from_the_start_of_that_epoch(tmp_path, synthetic_pair):
    """The changed lr is the one used: weights differ from keeping the old lr."""
    train(build_config("synthetic"), tmp_path / "a", progress=False)
    train(build_config("synthetic"), tmp_path / "b", progress=False)
    resume(tmp_path / "a", ["train.epochs=2", "train.optimizer.lr=0.001"], progress=False)
    resume(tmp_path / "b", ["train.epochs=2"], progress=False)
    wa, wb = (load_checkpoint(p / "checkpoint.safetensors")[0] for p in (tmp_path / "a", tmp_path / "b"))
    assert not all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("change, key", [
    ("model.latent_dim=8", "model.latent_dim: 4 -> 8"),
    ("pair.n=50", "pair.n: 96 -> 50"),
    ("train.batch_size=8", "train.batch_size: 16 -> 8"),
    ("train.seed=3", "train.seed: 0 -> 3"),
])
def test_resume_refuses_changes_that_cannot_apply(tmp_path, synthetic_pair, change, key):
    train(build_config("synthetic"), tmp_path / "r", progress=False)
    before = (tmp_path / "r" / "checkpoint.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="--resume cannot change these settings") as info:
        resume(tmp_path / "r", ["train.epochs=2", change], progress=False)
    assert key in str(info.value)
    assert (tmp_path / "r" / "checkpoint.safetensors").read_bytes() == before


def test_resume_refuses_another_optimizer_class(tmp_path, synthetic_pair):
    train(build_config("synthetic"), tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match="optimizer's class cannot change"):
        resume(tmp_path / "r", ["train.epochs=2", "train.group_optimizers.main.name=Adam"], progress=False)


def test_edited_config_yaml_is_reported_and_refused(tmp_path, synthetic_pair):
    train(build_config("synthetic"), tmp_path / "r", progress=False)
    cfg = tmp_path / "r" / "config.yaml"
    original = cfg.read_text()
    cfg.write_text(original.replace("lr: 0.01", "lr: 0.5"))
    for action in (lambda: resume(tmp_path / "r", ["train.epochs=2"], progress=False),
                   lambda: load_run(tmp_path / "r")):
        with pytest.raises(CheckpointError, match=r"config.yaml was edited.*\n  train.optimizer.lr: 0.5 in "
                                                  r"config.yaml, 0.01 in the checkpoint"):
            action()
    assert "lr: 0.5" in cfg.read_text()  # never overwritten
    cfg.write_text(original.replace("lr: 0.01", "lr: [oops"))
    with pytest.raises(CheckpointError, match="not valid YAML"):
        load_run(tmp_path / "r")
    cfg.write_text(original.replace("epochs: 1", "epochs: -1"))
    with pytest.raises(CheckpointError, match="does not validate"):
        load_run(tmp_path / "r")
    cfg.write_text("# a comment and another layout\n" + original.replace("pair:\n", "pair:   \n"))
    load_run(tmp_path / "r")  # same config, other text: fine
    cfg.unlink()
    resume(tmp_path / "r", ["train.epochs=2"], progress=False)  # a missing file is rewritten
    assert "epochs: 2" in cfg.read_text()


def test_kill_between_resume_checkpoint_and_config_write_is_not_taken_for_an_edit(tmp_path, synthetic_pair,
                                                                                  monkeypatch):
    from cmmkit.training.rundir import RunDir

    train(build_config("synthetic"), tmp_path / "r", progress=False)

    def killed(self, config):
        raise KeyboardInterrupt  # dies after the checkpoint took the new config, before config.yaml

    monkeypatch.setattr(RunDir, "write_config", killed)
    with pytest.raises(KeyboardInterrupt):
        resume(tmp_path / "r", ["train.epochs=2", "train.optimizer.lr=0.005"], progress=False)
    monkeypatch.undo()
    run = resume(tmp_path / "r", progress=False)
    assert run.config.train.optimizer.lr == 0.005 and "lr: 0.005" in (tmp_path / "r" / "config.yaml").read_text()


def test_metrics_csv_is_rebuilt_from_the_checkpoint_history(tmp_path, synthetic_pair):
    train(build_config("synthetic", sets=["train.epochs=2"]), tmp_path / "r", progress=False)
    path = tmp_path / "r" / "metrics.csv"
    good = path.read_text()
    path.write_text(good + good.splitlines()[-1] + "\n2,8,12")  # a duplicated row and a torn one
    resume(tmp_path / "r", ["train.epochs=3"], progress=False)
    rows = list(csv.DictReader(open(path)))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert path.read_text().startswith(good)


def test_mid_epoch_resume_gives_the_straight_run_train_means(tmp_path, synthetic_pair, monkeypatch):
    import os
    import signal

    from cmmkit.training.signals import TrainingInterrupted
    from cmmkit.training.trainer import Trainer

    straight = train(build_config("synthetic", sets=["train.epochs=2"]), tmp_path / "s", progress=False)
    original = Trainer.train_step

    def stop_at_6(self, batch):
        if self.step == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", stop_at_6)
    with pytest.raises(TrainingInterrupted) as info:
        train(build_config("synthetic", sets=["train.epochs=2"]), tmp_path / "r", progress=False)
    assert info.value.exit_code == 143
    monkeypatch.undo()
    resume(tmp_path / "r", progress=False)
    a = list(csv.DictReader(open(straight.path / "metrics.csv")))
    b = list(csv.DictReader(open(tmp_path / "r" / "metrics.csv")))
    for key in ("train_loss", "train_kl", "val_bound"):
        assert [r[key] for r in a] == [r[key] for r in b], key


def test_periodic_checkpoints_land_mid_epoch(tmp_path, synthetic_pair, monkeypatch):
    from cmmkit.training.trainer import Trainer

    positions = []
    original = Trainer.save

    def save(self):
        positions.append((self.epoch, self.batch_in_epoch))
        return original(self)

    monkeypatch.setattr(Trainer, "save", save)
    train(build_config("synthetic", sets=["train.checkpoint_every_minutes=1e-9"]), tmp_path / "r", progress=False)
    assert positions == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]
    positions.clear()
    train(build_config("synthetic", sets=["train.checkpoint_every_minutes=0"]), tmp_path / "s", progress=False)
    assert positions == [(0, 0), (1, 0)]


def test_a_checkpoint_from_before_the_history_keeps_its_metrics_rows(tmp_path, synthetic_pair):
    from cmmkit.training.checkpoint import save_checkpoint

    train(build_config("synthetic", sets=["train.epochs=2"]), tmp_path / "r", progress=False)
    ck = tmp_path / "r" / "checkpoint.safetensors"
    weights, state, meta = load_checkpoint(ck)
    del meta["history"]  # as an older cmmkit wrote it
    save_checkpoint(ck, weights, state, meta)
    before = (tmp_path / "r" / "metrics.csv").read_text()
    resume(tmp_path / "r", ["train.epochs=3"], progress=False)
    rows = list(csv.DictReader(open(tmp_path / "r" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert (tmp_path / "r" / "metrics.csv").read_text().startswith(before.splitlines()[0])
