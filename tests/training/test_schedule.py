"""The learning-rate schedule (train.warmup_steps, train.lr_schedule): its shape, that the optimizer
follows it step by step, that resuming continues it exactly, and that resuming reports no lr change
when only the schedule moved the rate."""

import contextlib
import logging

import pytest
import torch

from cmmkit.config import build_config
from cmmkit.runs import resume, train
from cmmkit.training.checkpoint import load_checkpoint

SCHEDULE = ["train.warmup_steps=4", "train.lr_schedule=inverse_sqrt", "train.optimizer.name=Adam",
            "train.optimizer.lr=0.01"]


@contextlib.contextmanager
def adam_rates():
    """The learning rate of every Adam step taken inside the block, in order."""
    seen: list[float] = []
    original = torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.Adam, "step", spy)
        yield seen


def test_factor_rises_linearly_then_decays_as_inverse_sqrt(tmp_path, synthetic_pair):
    from cmmkit.runs import build_model, load_data
    from cmmkit.training.rundir import RunDir
    from cmmkit.training.trainer import Trainer

    cfg = build_config("synthetic", sets=SCHEDULE + ["train.epochs=2"])
    data = load_data(cfg, progress=False)
    trainer = Trainer(cfg, build_model(cfg, data.info)[1], data, RunDir(tmp_path / "r"), progress=False)
    assert [trainer.lr_factor(s) for s in (1, 2, 4)] == pytest.approx([0.25, 0.5, 1.0])
    assert [trainer.lr_factor(s) for s in (16, 100)] == pytest.approx([0.5, 0.2])
    with adam_rates() as seen:
        trainer.fit()
    assert seen[:6] == pytest.approx([0.01 * trainer.lr_factor(s) for s in range(1, 7)])


def test_resume_continues_the_schedule_exactly_and_reports_no_lr_change(tmp_path, synthetic_pair, caplog, capsys):
    straight = train(build_config("synthetic", sets=SCHEDULE + ["train.epochs=2"]), tmp_path / "a", progress=False)
    train(build_config("synthetic", sets=SCHEDULE + ["train.epochs=1"]), tmp_path / "b", progress=False)
    with caplog.at_level(logging.INFO):
        resumed = resume(tmp_path / "b", ["train.epochs=2"], progress=False)
    said = caplog.text + capsys.readouterr().err
    assert "lr" not in said.replace("lr_schedule", ""), said  # only the schedule moved the rate
    wa, _, _ = load_checkpoint(straight.path / "checkpoint.safetensors")
    wb, _, _ = load_checkpoint(resumed.path / "checkpoint.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_decay_follows_training_progress_to_the_floor(shape, synthetic_pair):
    from cmmkit.training.optim import lr_factor

    tc = build_config("synthetic", sets=[f"train.lr_schedule={shape}", "train.min_lr_fraction=0.1",
                                         "train.warmup_steps=2"]).train
    assert lr_factor(tc, 1, 0.0) == pytest.approx(0.5)  # warm-up still applies
    assert lr_factor(tc, 2, 0.0) == pytest.approx(1.0)
    assert lr_factor(tc, 50, 0.5) == pytest.approx(0.55)  # half-way: half-way to the floor (both shapes)
    assert lr_factor(tc, 99, 1.0) == pytest.approx(0.1)
    quarter = lr_factor(tc, 25, 0.25)
    assert quarter == pytest.approx(0.775 if shape == "linear" else 0.1 + 0.9 * 0.5 * (1 + 2 ** -0.5))
    factors = [lr_factor(tc, 10 + i, i / 10) for i in range(11)]
    assert all(a > b for a, b in zip(factors, factors[1:]))  # strictly decreasing


def test_decay_reaches_the_last_step_and_resumes_exactly_after_a_mid_run_stop(tmp_path, synthetic_pair, monkeypatch):
    """The rate falls over the run's batches (the last step at 1/batches of the way above the
    floor); a stop mid-epoch resumes onto the same curve, so the weights equal an uninterrupted run's."""
    from cmmkit.training.signals import TrainingInterrupted
    from cmmkit.training.trainer import Trainer

    sets = ["train.lr_schedule=linear", "train.optimizer.name=Adam", "train.optimizer.lr=0.01", "train.epochs=2",
            "train.checkpoint_every_minutes=0"]
    with adam_rates() as seen:
        straight = train(build_config("synthetic", sets=sets), tmp_path / "a", progress=False)
    n = len(seen)
    assert n >= 4 and seen[0] == pytest.approx(0.01)
    assert seen == pytest.approx([0.01 * (1 - i / n) for i in range(n)])  # equal batches per epoch here
    decide = Trainer._decide

    def stop_at_step_3(self, every, last):
        stop, due = decide(self, every, last)
        return (15 if self.step == 3 else stop), due

    monkeypatch.setattr(Trainer, "_decide", stop_at_step_3)
    with pytest.raises(TrainingInterrupted):
        train(build_config("synthetic", sets=sets), tmp_path / "b", progress=False)
    monkeypatch.setattr(Trainer, "_decide", decide)
    _, _, meta = load_checkpoint(tmp_path / "b" / "checkpoint.safetensors")
    assert meta["step"] == 3 and meta["lr_factor"] == pytest.approx(1 - 2 / n)
    resumed = resume(tmp_path / "b", progress=False)
    wa, _, _ = load_checkpoint(straight.path / "checkpoint.safetensors")
    wb, _, _ = load_checkpoint(resumed.path / "checkpoint.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resuming_a_decaying_schedule_with_more_epochs_says_the_rate_jumps(tmp_path, synthetic_pair, caplog):
    sets = ["train.lr_schedule=linear", "train.optimizer.name=Adam", "train.optimizer.lr=0.01"]
    train(build_config("synthetic", sets=sets + ["train.epochs=1"]), tmp_path / "r", progress=False)
    with caplog.at_level(logging.WARNING):
        resume(tmp_path / "r", ["train.epochs=2"], progress=False)
    assert "train.epochs 1 -> 2 under the linear schedule" in caplog.text
    assert "at the next" in caplog.text and "0.5 at the next" in caplog.text  # half-way through 2 epochs


def test_warmup_stable_decay_holds_the_rate_until_the_last_fraction(synthetic_pair):
    from cmmkit.training.optim import lr_factor

    tc = build_config("synthetic", sets=["train.lr_schedule=linear", "train.decay_fraction=0.2"]).train
    assert [lr_factor(tc, 100, p) for p in (0.0, 0.5, 0.8)] == pytest.approx([1.0, 1.0, 1.0])
    assert [lr_factor(tc, 100, p) for p in (0.85, 0.9, 1.0)] == pytest.approx([0.75, 0.5, 0.0])
    with pytest.raises(Exception, match="decay_fraction"):
        build_config("synthetic", sets=["train.decay_fraction=0"])
