"""multi30k_en_de end to end on a fixture: train (CMMA and direct), generate, evaluate BLEU."""

from __future__ import annotations

import json

import pytest
from m30k_fixtures import make_multi30k

from cmmkit.cli import main
from cmmkit.config import build_config
from cmmkit.errors import CmmkitError
from cmmkit.evaluation.evaluate import EvalOptions, evaluate_run
from cmmkit.runs import load_run, train


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("m30k")
    make_multi30k(path)
    return path


@pytest.mark.parametrize("model", ["cmma", "direct"])
def test_train_generate_evaluate(tmp_path, folder, model):
    cfg = build_config("multi30k_en_de", preset="tiny", model=model,
                       sets=[f"data.data_dir={folder}", "train.epochs=2", "train.batch_size=16"])
    run = train(cfg, tmp_path / model, progress=False)
    assert (run.path / "samples" / "epoch_002.txt").read_text(encoding="utf-8").startswith("REF: ")
    out = run.generate(["A man runs on the grass.", {"text": "Two dogs play in the park."}])
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
    loaded = load_run(run.path)
    assert loaded.generate(["A man runs on the grass."]) == out[:1]  # the tokenizer travels in the checkpoint
    result = evaluate_run(run.path, EvalOptions(k=3, is_examples=4, parzen=False), progress=False)
    assert result["pair_metrics"] == ["bleu", "log_likelihood", "diversity"] and result["parzen"] is None
    div = result["diversity"]
    assert div["sentences"] == 10 and len(div["examples"][0]["samples"]) == 5 and -1e-6 <= div["self_bleu"] <= 100 + 1e-6
    if model == "direct":  # no latent: the five samples of a sentence are one translation
        assert div["distinct_per_sentence"] == 1.0 and div["best_of_5_bleu"] == pytest.approx(div["mean_sample_bleu"])
    bleu = result["bleu"]
    assert 0 <= bleu["bleu"] <= 100 and bleu["summary"]["BLEU"] == bleu["bleu"] and len(bleu["samples"]) == 10
    assert bleu["bleu_lowercase"] >= bleu["bleu"] - 1e-9  # lowercasing can only add matches
    written = (run.path / "translations_test.txt").read_text(encoding="utf-8").splitlines()
    assert len(written) == 10 and written[0] == bleu["samples"][0]["hypothesis"]
    assert bleu["samples"][0]["reference"] and bleu["examples"] == 10
    assert result["log_likelihood"]["bits_per_token"] > 0
    assert result["bound"] is not None  # the exact log-likelihood for direct, the ELBO for cmma
    assert (result["importance_sampling"] is not None) == (model == "cmma")  # only a latent model samples z
    assert json.loads((run.path / "eval.json").read_text())["bleu"]["bleu"] == bleu["bleu"]


def test_cli_generate_writes_a_text_file(tmp_path, folder):
    run = tmp_path / "run"
    assert main(["train", "--pair", "multi30k_en_de", "--preset", "tiny", "--model", "direct", "--data-dir", str(folder),
                 "--out", str(run), "--no-progress"]) == 0
    assert main(["generate", str(run), "--text", "A man rides a bike.", "--text", "A girl sits.",
                 "-o", str(tmp_path / "out.txt")]) == 0
    assert len((tmp_path / "out.txt").read_text(encoding="utf-8").splitlines()) == 2


@pytest.mark.parametrize("model", ["cmma", "direct"])
def test_pair_conforms(tmp_path, folder, model):
    """cmmkit.testing's conformance check on the fixture (text round trip on both sides)."""
    from cmmkit.testing import check_pair

    check_pair("multi30k_en_de", preset="tiny", model=model, data_dir=folder, run_dir=tmp_path / "run",
               roundtrip=("x", "y"))


def test_decoding_settings_change_for_one_load_only(tmp_path, folder):
    """--decode changes beam width / length penalty for evaluate and generate without touching the
    run; settings that shaped the weights are refused by name."""
    cfg = build_config("multi30k_en_de", preset="tiny", sets=[f"data.data_dir={folder}", "train.epochs=1"])
    run = train(cfg, tmp_path / "run", progress=False)
    before = (run.path / "checkpoint.safetensors").read_bytes()
    loaded = load_run(run.path, decode=["x.beam_size=1", "x.length_penalty=1.5"])
    assert loaded.x.options.beam_size == 1 and loaded.model.decoder.o.length_penalty == 1.5
    assert load_run(run.path).x.options.beam_size == cfg.pair.x.beam_size  # nothing saved
    result = evaluate_run(run.path, EvalOptions(only=["bleu"], decode=["x.length_penalty=1.5"]), progress=False)
    assert result["bleu"]["length_penalty"] == 1.5 and result["decode"] == ["x.length_penalty=1.5"]
    assert result["bound"] is None and result["log_likelihood"] is None
    assert (run.path / "checkpoint.safetensors").read_bytes() == before
    with pytest.raises(CmmkitError, match="--decode x.hidden: not a decoding setting of this run.*x.beam_size"):
        load_run(run.path, decode=["x.hidden=64"])
    with pytest.raises(CmmkitError, match="expected SIDE.NAME=VALUE"):
        load_run(run.path, decode=["x.beam_size"])
    out = tmp_path / "out.txt"
    assert main(["generate", str(run.path), "--text", "A man runs.", "--decode", "x.beam_size=1", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8").strip()
