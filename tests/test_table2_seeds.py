"""examples/table2_seeds.py: mean ± sample std over training seeds, per model, from the run folders."""

import json
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "table2_seeds.py"


def _run(folder: Path, model: str, bound: float, auc: float | None = None, logit: float | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "eval_test.json").write_text(json.dumps({
        "model": model, "bound": {"nats": bound}, "importance_sampling": None,
        "attribute_fidelity": None if auc is None else {"mean_auc": auc, "real_mean_auc": 0.9}}))
    if logit is not None:
        (folder / "edit_eval.json").write_text(json.dumps({"model": model, "edit_fidelity": {
            "mean_logit_change": logit, "mean_reached_rate": 0.3}}))
    return folder


def test_spreads_are_over_training_runs_per_model(tmp_path, monkeypatch, capsys):
    runs = [_run(tmp_path / "a0", "cmma", 19_000, 0.9, 2.0), _run(tmp_path / "a1", "cmma", 19_200, 0.8, 1.0),
            _run(tmp_path / "b0", "cvae", 19_100)]
    monkeypatch.setattr(sys, "argv", ["table2_seeds.py", *map(str, runs), "--csv", str(tmp_path / "t.csv")])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    out = capsys.readouterr().out
    cmma = next(line for line in out.splitlines() if line.startswith("| cmma"))
    assert "19,100 ± 141 (n=2)" in cmma and "0.850 ± 0.071 (n=2)" in cmma and "1.50 ± 0.71 (n=2)" in cmma
    cvae = next(line for line in out.splitlines() if line.startswith("| cvae"))
    assert "19,100 (n=1)" in cvae and "±" not in cvae and "—" in cvae
    rows = (tmp_path / "t.csv").read_text().splitlines()
    assert "cmma,bound_nats,19100.0,141.4213562373095,2" in rows


def test_a_folder_without_evaluation_is_refused(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(sys, "argv", ["table2_seeds.py", str(tmp_path / "empty")])
    with pytest.raises(SystemExit, match="no evaluation file"):
        runpy.run_path(str(SCRIPT), run_name="__main__")
