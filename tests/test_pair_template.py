"""The plugin docs and the template package: every hook documented with its docstring, the
tutorial's code is the template's and runs, and the template installs with pip, is listed, trains
through the CLI and uninstalls cleanly."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cmmkit import hookspecs
from cmmkit.testing import check_pair, registered

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "plugins"
TEMPLATE = REPO / "examples" / "cmmkit-pair-template"
DIST = "cmmkit-pair-template"


def _normalise(text: str) -> str:
    """Docstring (reST) and markdown spelled alike: ``x`` and `x` the same, roles dropped."""
    text = re.sub(r":(class|func|meth|mod):", "", text).replace("``", "`")
    return " ".join(text.replace(">", " ").split())


def test_every_hook_is_documented_with_its_docstring():
    text = (DOCS / "hooks.md").read_text(encoding="utf-8")
    hooks = [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "cmmkit_spec")]
    assert hooks, "no hookspecs found"
    for name in hooks:
        assert f"## `{name}(register)`" in text, f"docs/plugins/hooks.md has no section for hook {name}"
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert _normalise(doc) in _normalise(text), f"hooks.md: {name}'s docstring text differs from the hookspec"


def _blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def test_tutorial_shows_the_template_files_verbatim():
    python, toml = _blocks(DOCS / "tutorial.md", "python"), _blocks(DOCS / "tutorial.md", "toml")
    assert (TEMPLATE / "cmmkit_pair_template" / "__init__.py").read_text(encoding="utf-8") in python
    assert (TEMPLATE / "pyproject.toml").read_text(encoding="utf-8") in toml


def test_tutorial_modality_plugin_and_its_pair_run(tmp_path, monkeypatch):
    """Write the tutorial's modality and pair snippets as the files they say they are, then check
    the pair with both round trips (a binary image survives to_user/from_user exactly)."""
    python = _blocks(DOCS / "tutorial.md", "python")
    package = tmp_path / "cmmkit_binary"
    package.mkdir()
    (package / "__init__.py").write_text(next(b for b in python if "class BinaryImageModality" in b))
    (package / "pair.py").write_text(next(b for b in python if "class BinaryShapes" in b))
    monkeypatch.syspath_prepend(str(TEMPLATE))
    monkeypatch.syspath_prepend(str(tmp_path))
    import cmmkit_binary
    import cmmkit_binary.pair

    try:
        with registered(cmmkit_binary, name="binary-modality"), registered(cmmkit_binary.pair, name="binary-pair"):
            report = check_pair("binary_shapes", roundtrip=("x", "y"))
        assert report.structure["x"] == "uint8[3d]"
    finally:
        for module in ("cmmkit_binary", "cmmkit_binary.pair", "cmmkit_pair_template"):
            sys.modules.pop(module, None)


# --- installing the template -------------------------------------------------------------------
def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env)


def _pip(*args: str) -> subprocess.CompletedProcess:
    return _run(sys.executable, "-m", "pip", *args, "--no-input")


def _cmmkit(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("cmmkit")
    return _run(*([str(exe)] if exe.exists() else [sys.executable, "-m", "cmmkit.cli"]), *args)


def _builds_offline() -> bool:
    """Whether this environment can build a wheel without fetching anything: setuptools >= 70.1
    has bdist_wheel built in, older ones need the ``wheel`` package."""
    if importlib.util.find_spec("wheel") is not None:
        return True
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(p) for p in re.findall(r"\d+", setuptools.__version__)[:2])
    return (major, minor) >= (70, 1)


@pytest.fixture
def installed_template(tmp_path):
    """pip-install a copy of the template (a copy, so the build leaves nothing in the repository);
    uninstall it afterwards even when the test fails."""
    if _pip("show", DIST).returncode == 0:
        pytest.skip(f"{DIST} is already installed here; `pip uninstall {DIST}` to run this test")
    copy = tmp_path / "template"
    shutil.copytree(TEMPLATE, copy, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    offline = _builds_offline()
    out = _pip("install", "--no-deps", *(["--no-build-isolation"] if offline else []), str(copy))
    try:
        if out.returncode != 0:
            text = out.stdout + out.stderr
            if not offline and re.search(r"No matching distribution|Could not find a version|connection", text, re.I):
                pytest.skip("building the template needs setuptools>=70.1 or the wheel package here, or a "
                            "reachable package index: `pip install wheel` to run this test")
            pytest.fail(f"pip install {copy} failed:\n{text[-3000:]}")
        yield copy
    finally:
        if _pip("show", DIST).returncode == 0:
            _pip("uninstall", "-y", DIST)


@pytest.mark.slow
def test_template_installs_is_listed_trains_and_uninstalls(installed_template, tmp_path):
    listed = _cmmkit("pairs")
    assert listed.returncode == 0, listed.stderr
    line = next((row for row in listed.stdout.splitlines() if row.startswith("template_shapes")), None)
    assert line is not None, f"template_shapes not in `cmmkit pairs`:\n{listed.stdout}\n{listed.stderr}"
    assert "cmmkit_pair_template" in line and "0.1.0" in line and "image" in line and "named_vector" in line

    run = tmp_path / "run"
    trained = _cmmkit("train", "--pair", "template_shapes", "--epochs", "1", "--out", str(run), "--no-progress")
    assert trained.returncode == 0, trained.stderr
    assert (run / "checkpoint.safetensors").is_file() and (run / "samples" / "epoch_001.png").is_file()
    generated = _cmmkit("generate", str(run), "--attr", "square=1", "--attr", "bright=-1", "-o", str(tmp_path / "sq.png"))
    assert generated.returncode == 0, generated.stderr
    assert (tmp_path / "sq.png").is_file()

    own_tests = _run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(installed_template / "tests"))
    assert own_tests.returncode == 0, own_tests.stdout[-3000:]

    removed = _pip("uninstall", "-y", DIST)
    assert removed.returncode == 0, removed.stderr
    after = _cmmkit("pairs")
    assert after.returncode == 0 and "template_shapes" not in after.stdout, after.stdout
