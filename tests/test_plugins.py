import os
import subprocess
import sys
import warnings

import pytest
from fakes import SyntheticPair

from cmmkit.errors import CmmkitError
from cmmkit.hookspecs import hookimpl
from cmmkit.modality import Modality
from cmmkit.plugins import pm
from cmmkit.registry import Registry, get_registry


def test_builtin_pairs_models_and_modalities_come_through_the_entry_point_group():
    reg = get_registry()
    assert "lfw_faces_attrs" in reg.pairs.names()
    assert reg.pairs.entries["lfw_faces_attrs"].plugin == "lfw_faces_attrs"
    assert reg.models.entries["cmma"].plugin == "cmmkit_core"
    assert {"image", "named_vector"} <= set(reg.modalities.names())


def test_fake_plugin_registered_with_pm_is_listed(synthetic_pair):
    assert "synthetic" in get_registry().pairs.names()


class _Dup:
    @hookimpl
    def register_pairs(self, register):
        register(SyntheticPair())
        register(SyntheticPair())


class _WrongType:
    @hookimpl
    def register_modalities(self, register):
        register(object)


class _Broken:
    @hookimpl
    def register_models(self, register):
        raise RuntimeError("boom")


@pytest.mark.parametrize("plugin, message", [
    (_Dup(), "registered pair 'synthetic', which plugin 'bad' already registered"),
    (_WrongType(), "expected a subclass of cmmkit.modality.Modality"),
    (_Broken(), "boom"),
])
def test_bad_plugins_are_reported_by_name_and_others_still_work(plugin, message):
    pm.register(plugin, name="bad")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reg = Registry(pm)
        text = " ".join(str(w.message) for w in caught)
        assert "'bad'" in text and message in text
        assert "lfw_faces_attrs" in reg.pairs.names() and "cmma" in reg.models.names()
        assert "synthetic" not in reg.pairs.names()  # all-or-nothing per plugin hook
    finally:
        pm.unregister(name="bad")


def test_unknown_pair_suggests_the_close_match():
    with pytest.raises(CmmkitError, match="Did you mean 'lfw_faces_attrs'"):
        get_registry().pair("lfw_face_attrs")


def test_modality_base_is_abstract():
    with pytest.raises(TypeError):
        Modality(None, {})  # type: ignore[abstract]


DUMMY = '''
from cmmkit.hookspecs import hookimpl
from cmmkit.pair import Pair


class DummyPair(Pair):
    name = "dummy_pair"
    description = "a third-party pair"
    x_modality = "image"
    y_modality = "named_vector"

    def load(self, config, data_dir, *, download=True, progress=True):
        raise NotImplementedError


@hookimpl
def register_pairs(register):
    register(DummyPair())
'''


def _install_dummy(site, broken=False):
    """Install a distribution the way pip does: a module plus a dist-info with entry_points.txt."""
    (site / "cmmkit_dummy.py").write_text(DUMMY if not broken else "raise ImportError('dummy is broken')\n")
    info = site / "cmmkit_dummy-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cmmkit-dummy\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[cmmkit]\ndummy = cmmkit_dummy\n")
    (info / "RECORD").write_text("")


def _cmmkit(site, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    code = "import sys; from cmmkit.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)


def test_installed_third_party_plugin_is_discovered_through_the_entry_point_group(tmp_path):
    _install_dummy(tmp_path)
    out = _cmmkit(tmp_path, "pairs")
    assert out.returncode == 0, out.stderr
    line = next(row for row in out.stdout.splitlines() if row.startswith("dummy_pair"))
    assert "dummy (cmmkit_dummy)" in line and "1.2.3" in line and "image" in line
    assert "lfw_faces_attrs" in out.stdout


def test_plugin_that_fails_to_import_warns_by_name_and_others_still_work(tmp_path):
    _install_dummy(tmp_path, broken=True)
    out = _cmmkit(tmp_path, "pairs")
    assert out.returncode == 0
    assert "'dummy'" in out.stderr and "dummy is broken" in out.stderr
    assert "lfw_faces_attrs" in out.stdout
