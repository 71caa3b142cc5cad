"""KL warm-up (``model.kl_warmup_steps``): the training loss weighs the KL by a linear ramp kept in a
buffer, so it resumes where it stopped; the logged and evaluated bound stays the full bound."""

import csv

import pytest
import torch

from cmmkit import bound
from cmmkit.config import build_config
from cmmkit.runs import build_model, load_data, resume, train
from cmmkit.training.checkpoint import load_checkpoint


def _model(sets):
    cfg = build_config("synthetic", model="cmma", sets=sets)
    data = load_data(cfg, progress=False)
    torch.manual_seed(0)
    _, model = build_model(cfg, data.info)
    return model, model.prepare(data.splits["train"].get_batch(torch.arange(16)))


def test_ramp_weighs_the_kl_and_counts_steps(synthetic_pair):
    model, batch = _model(["model.kl_warmup_steps=4", "model.y_surrogate_weight=0"])
    weights = []
    for _ in range(6):
        w = model.kl_weight()
        torch.manual_seed(1)
        loss, logs = model.training_loss(batch)
        torch.manual_seed(1)
        terms = bound.elbo(model, batch)
        assert loss.item() == pytest.approx(-(terms.log_likelihood - w * terms.kl).mean().item(), rel=1e-6)
        assert logs["bound"].item() == pytest.approx(terms.elbo.mean().item(), rel=1e-6)  # the full bound
        weights.append(w)
    assert weights == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert int(model.state_dict()["kl_warmup_done"]) == 6


def test_without_warmup_the_loss_is_the_negative_bound_and_no_buffer(synthetic_pair):
    model, batch = _model(["model.y_surrogate_weight=0"])
    assert "kl_warmup_done" not in model.state_dict() and model.kl_weight() == 1.0
    torch.manual_seed(1)
    loss, _ = model.training_loss(batch)
    torch.manual_seed(1)
    assert loss.item() == pytest.approx(-bound.elbo(model, batch).elbo.mean().item(), rel=1e-6)


def test_warmup_is_saved_and_resumed(tmp_path, synthetic_pair):
    sets = ["model.kl_warmup_steps=1000", "train.epochs=1"]
    run = train(build_config("synthetic", model="cmma", sets=sets), tmp_path / "r", progress=False)
    weights, _, _ = load_checkpoint(run.path / "checkpoint.safetensors")
    done = int(weights["kl_warmup_done"])
    assert done > 0  # one count per optimizer step of epoch 1
    with open(run.path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert 0.0 < float(rows[-1]["train_kl_weight"]) < 1.0
    resume(run.path, overrides={"train": {"epochs": 2}}, progress=False)
    weights, _, _ = load_checkpoint(run.path / "checkpoint.safetensors")
    assert int(weights["kl_warmup_done"]) == 2 * done
