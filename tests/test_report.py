"""`cmmkit report`: Table 2 from eval.json files, and clear errors for unusable run folders."""

import csv
import io
import json

import pytest

from cmmkit.errors import CheckpointError, ConfigError
from cmmkit.report import load_eval, report_table
from cmmkit_lfw.report import KEY_ATTRIBUTES

AUC = {name: 0.6 + 0.01 * i for i, name in enumerate(KEY_ATTRIBUTES)} | {"Smiling": 0.5}
REAL = {name: 0.9 for name in KEY_ATTRIBUTES}


def _eval(model, bound=None, is_=None, parzen=None, fidelity=None, split="test"):
    return {"cmmkit_version": "0.1.0", "run": f"runs/{model}", "model": model, "pair": "lfw_faces_attrs",
            "split": split, "epoch": 20, "examples": 2142, "seeds": [0, 1, 2], "bound": bound,
            "importance_sampling": is_, "parzen": parzen, "attribute_fidelity": fidelity, "seconds": {}}


def _fidelity(mean):
    return {"judge": "runs/judge", "mean_auc": mean, "real_mean_auc": 0.85, "auc": AUC, "real_auc": REAL}


@pytest.fixture
def runs(tmp_path):
    evals = {
        "cmma": _eval("cmma", {"nats": 17973.2, "nats_std": 3.1, "bits_per_dim": 5.8},
                      {"k": 1000, "examples": 200, "nats": 18100.0, "nats_std": 2.0, "bits_per_dim": 5.79},
                      {"samples": 100, "sigma": 0.05, "nats": 9487.0, "nats_std": 10.0, "examples": 2142,
                       "note": "Parzen is unreliable (Theis et al. 2016)."}, _fidelity(0.71)),
        "cvae": _eval("cvae", {"nats": 14356.0, "nats_std": 0.0, "bits_per_dim": 6.1},
                      {"k": 1000, "examples": 2142, "nats": 14400.0, "nats_std": 1.0, "bits_per_dim": 6.05},
                      {"samples": 100, "sigma": 0.06, "nats": 8714.0, "nats_std": 4.0, "examples": 2142,
                       "note": "Parzen is unreliable (Theis et al. 2016)."}, _fidelity(0.65)),
        "cgan": _eval("cgan", None, None, {"samples": 100, "sigma": 0.07, "nats": 8320.0, "nats_std": 0.0,
                                           "examples": 2142, "note": "Parzen is unreliable (Theis et al. 2016)."},
                      _fidelity(0.6)),
    }
    dirs = []
    for name, ev in evals.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval.json").write_text(json.dumps(ev))
        dirs.append(tmp_path / name)
    return dirs


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


def test_table_has_the_papers_shape(runs):
    markdown, csv_text = report_table([load_eval(d) for d in runs])
    main, attrs = _tables(markdown)
    assert main["Model"][3:6] == ["Parzen log-likelihood (nats)", "Variational lower bound (nats)",
                                  "IS log p(x\\|y) (nats, K)"]
    assert main["cmma"][1:] == ["runs/cmma", "test", "9,487 ± 10", "17,973 ± 3", "18,100 ± 2 (K=1,000, 200 ex.)",
                                "5.800", "0.710 (real 0.850)"]
    assert main["cvae"][3:6] == ["8,714 ± 4", "14,356", "14,400 ± 1 (K=1,000)"]  # std 0: no ±
    assert main["cgan"][3:] == ["8,320", "—", "—", "—", "0.600 (real 0.850)"]  # a GAN has no bound
    assert markdown.count("Theis") == 1  # the Parzen note, once, under the table
    assert markdown.index("Theis") > markdown.index("| cgan |")
    assert "Warning" not in markdown
    # The attribute table: the paper's attributes per model, then the judge on real faces.
    assert attrs["Model"] == ["Model", "Run"] + KEY_ATTRIBUTES  # Smiling is not a key attribute
    assert attrs["cmma"][2:4] == ["0.600", "0.610"] and attrs["real faces"][2:] == ["0.900"] * 9
    assert list(attrs) == ["Model", "cmma", "cvae", "cgan", "real faces"]

    table = list(csv.DictReader(io.StringIO(csv_text)))
    assert len(table) == 3 and [r["model"] for r in table] == ["cmma", "cvae", "cgan"]
    assert float(table[0]["bound_nats"]) == 17973.2 and table[2]["bound_nats"] == ""
    assert table[0]["is_k"] == "1000" and float(table[1]["auc_Male"]) == 0.6


def test_mixed_splits_warn_and_missing_parzen_has_no_note():
    evals = [_eval("cmma", split="test"), _eval("cvae", split="val")]
    markdown, _ = report_table(evals)
    assert "different splits (test, val)" in markdown
    assert "Theis" not in markdown and "Note" not in markdown
    assert "Attribute AUC" not in markdown  # no judge, no attribute table
    with pytest.raises(ConfigError, match="no evaluated runs"):
        report_table([])


def test_other_pairs_fall_back_to_their_own_attributes():
    fid = {"judge": "j", "mean_auc": float("nan"), "real_mean_auc": 0.9, "auc": {"red": 0.8, "green": float("nan")},
           "real_auc": {"red": 1.0}}
    markdown, csv_text = report_table([_eval("cmma", fidelity=fid)])
    assert "| Model | Run | red | green |" in markdown and "| 0.800 | — |" in markdown
    assert _rows(markdown)["cmma"][-1] == "—"  # NaN mean AUC shows as missing
    assert "auc_red" in csv_text.splitlines()[0]


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
