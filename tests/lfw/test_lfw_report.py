"""The LFW plugin's report section (cmmkit_lfw.report): attribute fidelity in `cmmkit report` --
the mean AUC column with the real-face ceiling, the table of the paper's attributes, CSV columns,
the different-judges warning. (Moved from tests/test_report.py with the code.)"""

import csv
import io
import json

import pytest
from cmmkit_lfw.report import KEY_ATTRIBUTES
from test_report import _eval, _rows, _tables

from cmmkit.report import load_eval, report_table

AUC = {name: 0.6 + 0.01 * i for i, name in enumerate(KEY_ATTRIBUTES)} | {"Smiling": 0.5}
REAL = {name: 0.9 for name in KEY_ATTRIBUTES}


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


def test_other_pairs_fall_back_to_their_own_attributes():
    fid = {"judge": "j", "mean_auc": float("nan"), "real_mean_auc": 0.9, "auc": {"red": 0.8, "green": float("nan")},
           "real_auc": {"red": 1.0}}
    markdown, csv_text = report_table([_eval("cmma", fidelity=fid)])
    assert "| Model | Run | red | green |" in markdown and "| 0.800 | — |" in markdown
    assert _rows(markdown)["cmma"][-1] == "—"  # NaN mean AUC shows as missing
    assert "auc_red" in csv_text.splitlines()[0]


def test_different_judges_warn_and_a_malformed_block_is_no_crash():
    a = _eval("cmma", fidelity={"judge": "runs/j1", "mean_auc": 0.7, "auc": {"Male": 0.8}})
    b = _eval("cvae", fidelity={"judge": "runs/j2", "mean_auc": 0.6, "auc": {"Male": 0.7}})
    markdown, _ = report_table([a, b])
    assert "attribute AUCs come from different judges (runs/j1, runs/j2)" in markdown
    odd = {**_eval("cgan"), "attribute_fidelity": 3}  # not listed in pair_metrics, so load_eval let it through
    markdown, csv_text = report_table([a, odd])
    assert _rows(markdown)["cgan"][-1] == "—" and "auc_Male" in csv_text.splitlines()[0]
