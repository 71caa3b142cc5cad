"""fsdd_digits_speech passes the core's pair/modality conformance check (cmmkit.testing)."""

from __future__ import annotations

import cmmkit_fsdd
import pytest
from fsdd_fixtures import make_fsdd

testing = pytest.importorskip("cmmkit.testing")


@pytest.mark.parametrize("speaker", ["true", "false"])
def test_pair_conforms(tmp_path, speaker):
    make_fsdd(tmp_path / "data", indices=range(0, 11), digits=range(10))
    with testing.registered(cmmkit_fsdd, name="fsdd_digits_speech"):
        testing.check_pair("fsdd_digits_speech", preset="tiny", data_dir=tmp_path / "data",
                           config_sets=[f"pair.condition_on_speaker={speaker}"],
                           run_dir=tmp_path / "run" if speaker == "true" else None)
