"""`cmmkit report`: Table 2 from eval.json files, and clear errors for unusable run folders."""


import pytest

from cmmkit.errors import CheckpointError, ConfigError
from cmmkit.report import load_eval, report_table


def _eval(model, bound=None, is_=None, parzen=None, fidelity=None, split="test"):
    return {"cmmkit_version": "0.1.0", "run": f"runs/{model}", "model": model, "pair": "lfw_faces_attrs",
            "split": split, "epoch": 20, "examples": 2142, "seeds": [0, 1, 2], "bound": bound,
            "importance_sampling": is_, "parzen": parzen, "attribute_fidelity": fidelity, "seconds": {}}


def _tables(markdown):
    """Each markdown table as {first cell: [cells]}, in order."""
    tables, current = [], None
    for line in markdown.splitlines():
        if line.startswith("|---"):
            continue
        if line.startswith("| "):
            if current is None:
                current = {}
                tables.append(current)
            cells = [c.strip() for c in line.strip("| ").split(" | ")]
            current[cells[0]] = cells
        else:
            current = None
    return tables


def _rows(markdown):
    return _tables(markdown)[0]


def test_mixed_splits_warn_and_missing_parzen_has_no_note():
    evals = [_eval("cmma", split="test"), _eval("cvae", split="val")]
    markdown, _ = report_table(evals)
    assert "different splits (test, val)" in markdown
    assert "Theis" not in markdown and "Note" not in markdown
    assert "Attribute AUC" not in markdown  # no judge, no attribute table
    with pytest.raises(ConfigError, match="no evaluated runs"):
        report_table([])


def test_bad_run_folders(tmp_path):
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'nope'}: no such run folder"):
        load_eval(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="run `cmmkit evaluate .*` first") as info:
        load_eval(tmp_path)
    assert str(tmp_path / "eval.json") in str(info.value)
    (tmp_path / "eval.json").write_text('{"model": "cmma",')
    with pytest.raises(CheckpointError, match="malformed JSON") as info:
        load_eval(tmp_path)
    assert str(tmp_path / "eval.json") in str(info.value)
    (tmp_path / "eval.json").write_text('{"model": "cmma"}')
    with pytest.raises(CheckpointError, match="lacks required key\\(s\\) 'split', 'run'"):
        load_eval(tmp_path)
    (tmp_path / "eval.json").write_text('[1, 2]')
    with pytest.raises(CheckpointError, match="expected a JSON object"):
        load_eval(tmp_path)
    (tmp_path / "eval.json").write_text('{"model": "m", "split": "test", "run": "r", "bound": 3}')
    with pytest.raises(CheckpointError, match="'bound' must be an object or null"):
        load_eval(tmp_path)


def test_pair_measures_get_their_own_columns():
    evals = [{"model": "cmma", "run": "runs/a", "split": "test", "pair_metrics": ["bleu"],
              "bleu": {"summary": {"BLEU": 21.4, "chrF": 48.0}}},
             {"model": "direct", "run": "runs/b", "split": "test", "pair_metrics": ["bleu"],
              "bleu": {"summary": {"BLEU": 22.0}}}]
    markdown, csv_text = report_table(evals)
    assert "| Model | Run | BLEU | chrF |" in markdown
    assert "| cmma | runs/a | 21.4 | 48 |" in markdown and "| direct | runs/b | 22 | — |" in markdown
    header, first, second = csv_text.strip().splitlines()
    assert header.endswith(",BLEU,chrF") and first.endswith(",21.4,48.0") and second.endswith(",22.0,")


def test_measures_no_run_has_get_no_column():
    ev = {"model": "cmma", "run": "runs/t", "split": "test", "bound": {"nats": -54.2, "bits_per_dim": 5.4},
          "parzen": None, "attribute_fidelity": None, "pair_metrics": ["bleu"], "bleu": {"summary": {"BLEU": 2.2}}}
    markdown, _ = report_table([ev])
    assert "Parzen" not in markdown and "Attribute mean AUC" not in markdown and "IS log" not in markdown
    assert "Variational lower bound" in markdown and "| BLEU |" in markdown
