import pathlib

import pytest

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def multi30k_mirror():
    path = SHARED_DATA / "multi30k"
    if not (path / "train.en.gz").is_file():
        pytest.skip(f"real Multi30k mirror not found at {path} (only present on the project's machines)")
    return path
