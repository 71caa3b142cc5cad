"""`cmmkit evaluate` on tiny synthetic runs: every measure, eval.json, and bad input."""

import json

import pytest

from cmmkit.cli import main
from cmmkit.config import build_config
from cmmkit.errors import CmmkitError
from cmmkit.evaluation.evaluate import EvalOptions, evaluate_run
from cmmkit.runs import train


@pytest.fixture
def runs(tmp_path, synthetic_pair):
    out = {}
    for model, epochs in (("cmma", 3), ("cgan", 1), ("attribute_judge", 3)):
        cfg = build_config("synthetic", model=model, sets=[f"train.epochs={epochs}", "pair.n=160"])
        out[model] = train(cfg, tmp_path / model, progress=False).path
    return out


def _opts(judge=None, **kw):
    base = dict(k=50, parzen_samples=20, parzen_val_examples=16, seeds=[0, 1], judge=judge)
    return EvalOptions(**{**base, **kw})


def test_evaluate_latent_model_writes_every_measure(runs):
    before = {p.name: p.stat().st_mtime_ns for p in runs["cmma"].iterdir()}
    result = evaluate_run(runs["cmma"], _opts(judge=runs["attribute_judge"]), progress=False)
    saved = json.loads((runs["cmma"] / "eval.json").read_text())
    assert saved["model"] == "cmma" and saved["split"] == "test" and saved["examples"] == 32
    assert saved["importance_sampling"]["nats"] >= saved["bound"]["nats"]
    assert saved["bound"]["nats_std"] > 0  # two seeds of a stochastic bound differ
    assert 0.001 <= saved["parzen"]["sigma"] <= 1.0 and "Theis" in saved["parzen"]["note"]
    fid = saved["attribute_fidelity"]
    assert set(fid["auc"]) == {"red", "green", "square", "unused"}
    assert fid["real_auc"]["red"] > 0.9  # the judge sees the red channel on real images
    assert result["bound"] == saved["bound"]
    after = {p.name: p.stat().st_mtime_ns for p in runs["cmma"].iterdir() if p.name != "eval.json"}
    assert after == before  # evaluate changes nothing but eval.json


def test_gan_has_no_bound_but_a_parzen_estimate(runs):
    result = evaluate_run(runs["cgan"], _opts(), progress=False)
    assert result["bound"] is None and result["importance_sampling"] is None
    assert result["parzen"]["nats"] == result["parzen"]["nats"]  # not NaN


def test_bad_input(runs, tmp_path):
    with pytest.raises(CmmkitError, match="--split 'tset': no such split; synthetic has train, val, test"):
        evaluate_run(runs["cmma"], _opts(split="tset"), progress=False)
    with pytest.raises(CmmkitError, match="does not model p\\(x \\| y\\)"):
        evaluate_run(runs["attribute_judge"], _opts(), progress=False)
    with pytest.raises(CmmkitError, match="expected an attribute_judge run"):
        evaluate_run(runs["cmma"], _opts(judge=runs["cgan"]), progress=False)
    with pytest.raises(CmmkitError, match="not a cmmkit run"):
        evaluate_run(tmp_path, _opts(), progress=False)
    with pytest.raises(CmmkitError, match="parzen-samples"):
        evaluate_run(runs["cmma"], _opts(parzen_samples=10**9), progress=False)


def test_cli_evaluate_and_report(runs, capsys, tmp_path):
    assert main(["evaluate", str(runs["cmma"]), "--k", "20", "--parzen-samples", "10", "--parzen-val-examples", "8",
                 "--judge", str(runs["attribute_judge"]), "--no-progress"]) == 0
    assert main(["evaluate", str(runs["cgan"]), "--parzen-samples", "10", "--parzen-val-examples", "8",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["report", str(runs["cmma"]), str(runs["cgan"]), "--csv", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    assert "cmma" in out and "cgan" in out
    assert len((tmp_path / "t.csv").read_text().strip().splitlines()) == 3


def test_a_deterministic_model_reports_its_exact_likelihood_as_the_bound(tmp_path, synthetic_pair):
    cfg = build_config("synthetic", model="direct", sets=["train.epochs=1", "pair.n=64"])
    run = train(cfg, tmp_path / "direct", progress=False).path
    result = evaluate_run(run, _opts(parzen=False), progress=False)
    assert result["bound"]["nats"] == result["bound"]["nats"]  # a number, not NaN
    assert result["importance_sampling"] is None  # no latent to sample


def test_example_caps_default_and_all(runs, capsys):
    """The defaults cap the slow measures (IS: 100 examples, Parzen: 500); 'all' lifts a cap; a bad
    count is refused by name."""
    assert EvalOptions().is_examples == 100 and EvalOptions().parzen_examples == 500
    assert main(["evaluate", str(runs["cmma"]), "--k", "5", "--is-examples", "7", "--parzen-examples", "9",
                 "--parzen-samples", "5", "--parzen-val-examples", "8", "--no-progress"]) == 0
    saved = json.loads((runs["cmma"] / "eval.json").read_text())
    assert saved["importance_sampling"]["examples"] == 7 and saved["parzen"]["examples"] == 9
    assert main(["evaluate", str(runs["cmma"]), "--k", "5", "--is-examples", "all", "--parzen-examples", "ALL",
                 "--parzen-samples", "5", "--parzen-val-examples", "8", "--no-progress"]) == 0
    saved = json.loads((runs["cmma"] / "eval.json").read_text())
    assert saved["importance_sampling"]["examples"] == 32 and saved["parzen"]["examples"] == 32
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["evaluate", str(runs["cmma"]), "--is-examples", "0"])
    assert "--is-examples: expected a positive whole number or 'all', got 0" in capsys.readouterr().err


def test_only_computes_the_named_measures(runs):
    result = evaluate_run(runs["cmma"], _opts(only=["bound"]), progress=False)
    assert result["bound"]["nats"] == result["bound"]["nats"]
    assert result["importance_sampling"] is None and result["parzen"] is None and result["seconds"].keys() == {"bound"}
    with pytest.raises(CmmkitError, match="--only bleu: no such measure for synthetic; it has bound, "
                                          "importance_sampling, parzen"):
        evaluate_run(runs["cmma"], _opts(only=["bleu"]), progress=False)
