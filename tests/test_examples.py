"""The example scripts run (those that need no external data)."""

import re
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("model", ["cmma", "direct"])
def test_latent_use_probe_on_structured_latents(tmp_path, monkeypatch, capsys, model):
    """The probe on translation, where z has one Gaussian per source token: shuffling codes between
    sentences keeps each code's own mask."""
    from multi30k.m30k_fixtures import make_multi30k

    make_multi30k(tmp_path / "m30k")
    monkeypatch.setenv("CMMKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "argv", ["latent_use_probe.py", "--pair", "multi30k_en_de", "--preset", "tiny", "--model",
                                      model, "--set", f"data.data_dir={tmp_path / 'm30k'}", "--steps", "3",
                                      "--every", "2"])
    runpy.run_path(str(EXAMPLES / "latent_use_probe.py"), run_name="__main__")
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("step")]
    assert [int(ln.split()[1]) for ln in lines] == [0, 2]
    assert all(float(re.search(r"spread (-?[\d.]+)", ln).group(1)) > 0 for ln in lines)


@pytest.mark.parametrize("model", ["cmma", "direct"])
def test_latent_use_probe_reports_spread_and_gain(synthetic_pair, monkeypatch, capsys, model):
    monkeypatch.setattr(sys, "argv", ["latent_use_probe.py", "--pair", "synthetic", "--model", model,
                                      "--steps", "6", "--every", "5"])
    runpy.run_path(str(EXAMPLES / "latent_use_probe.py"), run_name="__main__")
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("step")]
    assert [int(ln.split()[1]) for ln in lines] == [0, 5]
    for ln in lines:
        spread, gain = (float(re.search(rf"{k} (-?[\d.]+)", ln).group(1)) for k in ("spread", "gain"))
        assert spread > 0 and abs(gain) < 1e3
        assert ("prior logvar" in ln) == (model == "cmma")
