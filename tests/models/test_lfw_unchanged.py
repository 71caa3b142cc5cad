"""Structured latents must not move the flat-latent pairs: a tiny LFW run's validation bound and
fixed-seed generated faces, pinned to the values measured before the latent became structured
(commit 59418bc, same fixture, same seeds, CPU)."""

from __future__ import annotations

import csv

import pytest
import torch
from lfw_fixtures import make_lfw_fixture

BEFORE = {  # model: (val_bound after 2 epochs, sum of 4 faces at noise 0, their first 3 values, sum at noise 1)
    "cmma": (-11653.4, 23856.64826539159, (0.4792829751968384, 0.4794470965862274, 0.4781425893306732),
             23672.501352757215),
    "cvae": (-10965.1, 24227.68275743723, (0.47889816761016846, 0.48117032647132874, 0.4767277240753174),
             24052.34083633125),
    "direct": (-11447.5, 24103.802937924862, (0.49945712089538574, 0.5003231167793274, 0.5002396702766418),
               23918.53901912272),
}


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(BEFORE))
def test_tiny_lfw_run_matches_the_values_before_structured_latents(model, tmp_path, monkeypatch):
    from cmmkit.config import build_config
    from cmmkit.runs import load_data, load_run, train

    monkeypatch.setenv("CMMKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CMMKIT_DATA", raising=False)
    torch.set_num_threads(1)
    fx = make_lfw_fixture(tmp_path / "lfw", n_people=12, rows=56, real_valued=False)
    cfg = build_config("lfw_faces_attrs", preset="tiny", model=model,
                       sets=[f"data.data_dir={fx['folder']}", "pair.train_size=30", "pair.val_size=10",
                             "train.epochs=2"])
    train(cfg, tmp_path / model, progress=False)
    rows = list(csv.DictReader(open(tmp_path / model / "metrics.csv")))
    run = load_run(tmp_path / model)
    y = load_data(run.config, progress=False).splits["val"].get_batch(torch.arange(4))["y"]
    torch.manual_seed(123)
    g0 = run.model.generate(y, noise_scale=0.0)
    torch.manual_seed(123)
    g1 = run.model.generate(y, noise_scale=1.0)
    bound, sum0, first, sum1 = BEFORE[model]
    assert float(rows[-1]["val_bound"]) == pytest.approx(bound, rel=2e-5)
    assert float(g0.double().sum()) == pytest.approx(sum0, rel=1e-5)
    assert [float(v) for v in g0.flatten()[:3]] == pytest.approx(first, rel=1e-4)
    assert float(g1.double().sum()) == pytest.approx(sum1, rel=1e-5)
