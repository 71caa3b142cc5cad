"""Issue 15: the import contracts in pyproject.toml hold (plugins use cmmkit only through
cmmkit.api, the core never imports a pair plugin, no import cycles), and cmmkit.api gives what
it lists."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold(tmp_path):
    pytest.importorskip("importlinter")
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 kept, 0 broken" in out.stdout


def test_the_contracts_cover_every_built_in_plugin():
    text = (ROOT / "pyproject.toml").read_text()
    plugins = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").is_file())
    assert plugins == ["cmmkit_fsdd", "cmmkit_lfw", "cmmkit_multi30k"]
    for name in plugins:
        assert f'"{name} -> cmmkit.api"' in text and f'"{name}.** -> cmmkit.api"' in text


def test_every_public_name_resolves():
    api = importlib.import_module("cmmkit.api")
    missing = [name for name in api.__all__ if getattr(api, name, None) is None]
    assert not missing
    with pytest.raises(AttributeError, match="no attribute 'Trainer'"):
        api.Trainer  # noqa: B018  (internals are not public)


def test_a_missing_extra_names_it():
    from cmmkit.api import ConfigError, require

    assert require("json", "x").dumps([]) == "[]"
    with pytest.raises(ConfigError, match=r"pip install 'cmmkit\[fsdd\]'"):
        require("no_such_module_for_cmmkit", "fsdd")


def test_importing_the_api_is_cheap():
    code = "import sys, cmmkit.api; from cmmkit.api import hookimpl; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr  # a plugin's __init__ does not pay for torch
