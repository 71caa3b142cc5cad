"""The learning-rate schedule (train.warmup_steps, train.lr_schedule): its shape, that the optimizer
follows it step by step, that resuming continues it exactly, and that resuming reports no lr change
when only the schedule moved the rate."""

import logging

import pytest
import torch

from cmmkit.config import build_config
from cmmkit.runs import resume, train
from cmmkit.training.checkpoint import load_checkpoint

SCHEDULE = ["train.warmup_steps=4", "train.lr_schedule=inverse_sqrt", "train.optimizer.name=Adam",
            "train.optimizer.lr=0.01"]


def test_factor_rises_linearly_then_decays_as_inverse_sqrt(tmp_path, synthetic_pair):
    from cmmkit.runs import build_model, load_data
    from cmmkit.training.rundir import RunDir
    from cmmkit.training.trainer import Trainer

    cfg = build_config("synthetic", sets=SCHEDULE + ["train.epochs=2"])
    data = load_data(cfg, progress=False)
    trainer = Trainer(cfg, build_model(cfg, data.info)[1], data, RunDir(tmp_path / "r"), progress=False)
    assert [trainer.lr_factor(s) for s in (1, 2, 4)] == pytest.approx([0.25, 0.5, 1.0])
    assert [trainer.lr_factor(s) for s in (16, 100)] == pytest.approx([0.5, 0.2])
    seen = []
    original = torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.Adam, "step", spy)
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
