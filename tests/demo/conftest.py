"""Tiny trained runs of the three pairs (fixture data) and launched demo pages, shared by the demo tests."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "fsdd"), str(TESTS / "multi30k")]

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # as cmmkit demo sets it before importing gradio


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory):
    """LFW: cmma (h reads x and y), cmma_x (posterior=x: infers attributes), cgan (cannot edit);
    FSDD: cmma; Multi30k: cmma. Returns their folders plus the LFW fixture."""
    from fsdd_fixtures import make_fsdd
    from lfw_fixtures import make_lfw_fixture
    from m30k_fixtures import make_multi30k

    from cmmkit.config import build_config
    from cmmkit.runs import train

    root = tmp_path_factory.mktemp("demo_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CMMKIT_CACHE", str(root / "cache"))
        mp.delenv("CMMKIT_DATA", raising=False)
        fx = make_lfw_fixture(root / "lfw", n_people=12, rows=56, real_valued=False)
        base = [f"data.data_dir={fx['folder']}", "pair.train_size=30", "pair.val_size=10", "train.epochs=2"]
        runs = {}
        specs = [("cmma", "cmma", []), ("cmma_x", "cmma", ["model.posterior=x"]), ("cgan", "cgan", [])]
        for name, model, sets in specs:
            cfg = build_config("lfw_faces_attrs", preset="tiny", model=model, sets=base + sets)
            runs[name] = train(cfg, root / name, progress=False).path
        make_fsdd(root / "fsdd", indices=range(0, 13), digits=range(10))
        cfg = build_config("fsdd_digits_speech", preset="tiny", sets=[f"data.data_dir={root / 'fsdd'}"])
        runs["speech"] = train(cfg, root / "speech", progress=False).path
        make_multi30k(root / "m30k")
        cfg = build_config("multi30k_en_de", preset="tiny", model="cmma",
                           sets=[f"data.data_dir={root / 'm30k'}", "train.epochs=2", "train.batch_size=16"])
        runs["translation"] = train(cfg, root / "translation", progress=False).path
    runs["fixture"] = fx
    return runs


def _serve(paths, **kwargs):
    from cmmkit.demo.serve import start

    return start([str(p) for p in paths], port=0, **kwargs)


@pytest.fixture(scope="session")
def faces_demo(demo_runs):
    """The LFW page with cmma, cmma_x and cgan side by side, test faces from the fixture."""
    demo = _serve([demo_runs["cmma"], demo_runs["cmma_x"], demo_runs["cgan"]], data_dir=demo_runs["fixture"]["folder"])
    yield demo
    demo.close()


@pytest.fixture(scope="session")
def faces_client(faces_demo):
    from gradio_client import Client

    return Client(faces_demo.url, verbose=False)


@pytest.fixture(scope="session")
def face_file(demo_runs, tmp_path_factory):
    """A PNG face with a name LFW does not know (its attributes must be inferred)."""
    from PIL import Image

    path = tmp_path_factory.mktemp("upload") / "someone.png"
    Image.fromarray(demo_runs["fixture"]["faces"][3]).resize((150, 120)).save(path)
    return path
