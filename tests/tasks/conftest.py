"""Tiny trained LFW runs (fixture data in the official format), shared by the task tests."""

from __future__ import annotations

import pytest
from lfw_fixtures import make_lfw_fixture

SPLIT = ["pair.train_size=30", "pair.val_size=10"]


@pytest.fixture(scope="module")
def lfw_runs(tmp_path_factory):
    """cmma (x,y posterior), cmma_x (x-only posterior, 2-d latent), cvae, cgan, vae (2-d latent), judge."""
    from cmmkit.config import build_config
    from cmmkit.runs import train

    root = tmp_path_factory.mktemp("lfw_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CMMKIT_CACHE", str(root / "cache"))
        mp.delenv("CMMKIT_DATA", raising=False)
        fx = make_lfw_fixture(root / "lfw", n_people=12, rows=56, real_valued=False)
        base = [f"data.data_dir={fx['folder']}", *SPLIT, "train.epochs=2"]
        specs = {"cmma": ("cmma", []), "cmma_x": ("cmma", ["model.posterior=x", "model.latent_dim=2"]),
                 "cvae": ("cvae", []), "cgan": ("cgan", []), "vae": ("vae", ["model.latent_dim=2"]),
                 "judge": ("attribute_judge", [])}
        runs = {}
        for name, (model, sets) in specs.items():
            cfg = build_config("lfw_faces_attrs", preset="tiny", model=model, sets=base + sets)
            runs[name] = train(cfg, root / name, progress=False).path
        runs["fixture"] = fx
        yield runs
