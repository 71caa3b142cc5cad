"""The deterministic encoder-decoder reference: a proper ConditionalModel for any modality pair."""

import csv

import torch

from cmmkit.config import build_config
from cmmkit.runs import build_model, load_data, load_run, train


def test_direct_trains_and_generates_on_the_image_pair(tmp_path, synthetic_pair):
    run = train(build_config("synthetic", model="direct", sets=["train.epochs=2", "model.hidden=32",
                                                                 "model.code_dim=8"]), tmp_path / "d", progress=False)
    rows = list(csv.DictReader(open(run.path / "metrics.csv")))
    assert float(rows[-1]["val_bound"]) > float(rows[0]["val_bound"])
    assert (run.path / "samples" / "epoch_002.png").exists()
    assert len(load_run(run.path).generate([{"red": 1}])) == 1


def test_bound_is_the_exact_log_likelihood_and_loss_its_negative_mean(synthetic_pair):
    cfg = build_config("synthetic", model="direct", sets=["model.hidden=32", "model.code_dim=8"])
    data = load_data(cfg, progress=False)
    _, model = build_model(cfg, data.info)
    model.eval()  # no dropout: the two passes must agree
    batch = data.splits["val"].get_batch(torch.arange(6))
    torch.manual_seed(0)
    ev = model.evaluate(model.prepare(batch))
    torch.manual_seed(0)
    prepared = model.prepare(batch)
    exact = model.decoder.log_prob(model.code(prepared["y"]), prepared["x"])
    torch.testing.assert_close(ev["bound"], exact)
    torch.manual_seed(0)
    loss, logs = model.training_loss(model.prepare(batch))
    torch.testing.assert_close(loss, -exact.mean())
    assert set(model.optimizer_groups()) == {"main"}
