"""The LFW `default` preset's CMMA (issue 16): warmup-stable-decay, the decoder's log-variance floor
at -9 started at -4, and the log p(y) surrogate on; with the surrogate switched off the training loss
is exactly minus the bound.

Why (docs/results.md, "A low starting variance"): with the decoder's variance started near 0 one seed
in three stalled at the -9 floor and the surrogate cost bound; started at -4 no seed stalls, and the
surrogate raises the bound, the attribute AUC and the edits.
"""

from __future__ import annotations

import csv

import pytest
import torch
from lfw_fixtures import make_lfw_fixture

from cmmkit.config import build_config
from cmmkit.errors import ConfigError
from cmmkit.runs import build_model, load_data, train

SMALL = ["pair.train_size=30", "pair.val_size=10", "pair.x.base_channels=8", "model.latent_dim=8",
         "model.prior_hidden=16", "model.posterior_hidden=16", "model.posterior_y_hidden=8", "pair.y.hidden=16",
         "train.epochs=1", "train.batch_size=10", "train.grid_examples=4", "train.checkpoint_every_minutes=0"]


def test_default_cmma_is_the_measured_one_and_fits_the_budget():
    cfg = build_config("lfw_faces_attrs", model="cmma")
    assert cfg.model.y_surrogate_weight == 1.0
    assert cfg.train.epochs == 14  # ~5.5 CPU-ms per face: 14 x 10,000 faces fit in 15 minutes, 20 did not
    # warmup-stable-decay, floor -9, log-variance started at -4: test bounds 20,169 / 20,203 / 20,372 over
    # seeds 0-2; the -6 floor gave 19,039 / 18,541 / 19,093, and -9 started near 0 19,537 / 15,519 (a stalled
    # seed) / 19,582 (docs/results.md, "A low starting variance")
    assert (cfg.pair.x.logvar_floor, cfg.pair.x.logvar_init) == (-9.0, -4.0)
    assert (cfg.train.lr_schedule, cfg.train.decay_fraction, cfg.train.min_lr_fraction) == ("linear", 0.2, 0.0)
    # the CVAE gets the same budget and schedule (Table 2 compares at equal epochs); the CGAN keeps its swept
    # constant rates
    cvae = build_config("lfw_faces_attrs", model="cvae")
    assert (cvae.train.epochs, cvae.train.lr_schedule, cvae.pair.x.logvar_floor, cvae.pair.x.logvar_init) == (
        14, "linear", -9.0, -4.0)
    assert build_config("lfw_faces_attrs", model="cgan").train.lr_schedule == "constant"


@pytest.fixture
def lfw_fixture(tmp_path, monkeypatch):
    monkeypatch.setenv("CMMKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CMMKIT_DATA", raising=False)
    return make_lfw_fixture(tmp_path / "lfw", n_people=12, rows=56, real_valued=False)["folder"]


@pytest.mark.slow
@pytest.mark.parametrize("weight", [None, 0.0])
def test_default_cmma_trains_on_its_bound_and_the_surrogate(weight, lfw_fixture, tmp_path):
    """With the preset, the training loss is minus the bound minus the surrogate E log q(y | z) it
    logs; with the surrogate switched off, exactly minus the bound (nothing else reaches f)."""
    torch.set_num_threads(1)
    sets = [f"data.data_dir={lfw_fixture}", *SMALL]
    if weight is not None:
        sets.append(f"model.y_surrogate_weight={weight}")
    cfg = build_config("lfw_faces_attrs", model="cmma", sets=sets)
    train(cfg, tmp_path / "run", progress=False)
    with open(tmp_path / "run" / "metrics.csv") as handle:
        row = list(csv.DictReader(handle))[-1]
    loss, bound = float(row["train_loss"]), float(row["train_bound"])
    if weight == 0.0:
        assert "train_log_q_y" not in row
        assert loss == pytest.approx(-bound, rel=1e-5, abs=1e-3)
    else:
        assert loss == pytest.approx(-bound - float(row["train_log_q_y"]), rel=1e-4)
        assert abs(loss + bound) > 1.0


def test_attribute_inference_needs_the_surrogate_switched_on(lfw_fixture):
    base = [f"data.data_dir={lfw_fixture}", *SMALL, "model.posterior=x"]
    cfg = build_config("lfw_faces_attrs", model="cmma", sets=[*base, "model.y_surrogate_weight=0"])
    info = load_data(cfg, progress=False).info
    _, model = build_model(cfg, info)
    assert model.y_decoder is None and not model.can_infer
    with pytest.raises(ConfigError, match="y_surrogate_weight > 0"):
        model.infer_y(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    _, model = build_model(build_config("lfw_faces_attrs", model="cmma", sets=base), info)  # the preset's
    assert model.can_infer
    assert model.infer_y(torch.zeros(2, 3, 64, 64, dtype=torch.uint8)).shape == (2, 73)


def test_a_shared_y_encoder_posterior_cannot_infer_y(lfw_fixture):
    """With share_y_encoder the (x, y) posterior has no y encoder of its own; it still needs y, so it
    must not claim to infer y from x (it used to, and crashed in evaluate-edits)."""
    cfg = build_config("lfw_faces_attrs", model="cmma",
                       sets=[f"data.data_dir={lfw_fixture}", *SMALL, "model.share_y_encoder=true"])
    _, model = build_model(cfg, load_data(cfg, progress=False).info)
    assert model.y_encoder is None and model.y_decoder is not None
    assert not model.can_infer
    with pytest.raises(ConfigError, match="posterior=x"):
        model.infer_y(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
