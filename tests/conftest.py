import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's caches and downloads out of the user's home and $CMMKIT_DATA."""
    monkeypatch.setenv("CMMKIT_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("CMMKIT_DATA", raising=False)


@pytest.fixture
def synthetic_pair():
    """Register the synthetic test pair through pluggy, as a plugin would, and remove it after."""
    from fakes import SyntheticPlugin

    from cmmkit.plugins import load_plugins, pm
    from cmmkit.registry import get_registry

    load_plugins()
    pm.register(SyntheticPlugin(), name="synthetic-test-plugin")
    get_registry(refresh=True)
    yield get_registry().pair("synthetic")
    pm.unregister(name="synthetic-test-plugin")
    get_registry(refresh=True)


def _mirror(dataset: str, marker: str, title: str) -> pathlib.Path:
    """The real-data mirror of ``dataset``, or a skip naming where it was looked for."""
    path = SHARED_DATA / dataset
    if not (path / marker).exists():
        pytest.skip(f"real {title} mirror not found at {path} (only present on the project's machines)")
    return path


@pytest.fixture
def lfw_mirror():
    return _mirror("lfw", "lfwcrop_color.zip", "LFW")


@pytest.fixture
def fsdd_mirror():
    return _mirror("fsdd", "recordings", "FSDD")


@pytest.fixture
def multi30k_mirror():
    return _mirror("multi30k", "train.en.gz", "Multi30k")
