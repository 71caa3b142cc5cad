"""The example scripts run (those that need no external data)."""

import re
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


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
