import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def fsdd_mirror():
    path = SHARED_DATA / "fsdd"
    if not (path / "recordings").is_dir():
        pytest.skip(f"real FSDD mirror not found at {path} (only present on the project's machines)")
    return path
