"""The template pair's own tests. Run ``python -m pytest tests`` in the package folder, installed
(``pip install -e .``) or not: ``registered`` adds the plugin for the test when it is not installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, when not installed

import cmmkit_pair_template

from cmmkit.api import build_config, check_pair, get_pair, registered


@pytest.fixture
def pair():
    with registered(cmmkit_pair_template, name="template_shapes"):
        yield get_pair("template_shapes")


def test_conforms_to_what_cmmkit_expects(pair, tmp_path):
    report = check_pair(pair, run_dir=tmp_path / "run")
    assert report.split_sizes == {"train": 480, "val": 60, "test": 60}


def test_the_square_and_the_background_follow_y(pair):
    data = pair.load(build_config("template_shapes").pair, None)
    train = data.splits["train"]
    square = train.x[:, 0, 8, 8].float() - train.x[:, 0, 0, 0].float()  # centre minus corner
    assert bool(((square > 50) == (train.y[:, 0] > 0)).all())
    assert bool(((train.x[:, 0, 0, 0] > 100) == (train.y[:, 1] > 0)).all())
