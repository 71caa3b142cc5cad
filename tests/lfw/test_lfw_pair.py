"""The lfw_faces_attrs pair end to end on a generated fixture (and the real mirror when present)."""

import zipfile

import numpy as np
import pytest
import torch
from lfw_fixtures import make_lfw_fixture, ppm_bytes

from cmmkit.config import build_config
from cmmkit.errors import DataError
from cmmkit.runs import load_data

SPLIT = ["pair.train_size=20", "pair.val_size=8"]


def _config(folder, *sets):
    return build_config("lfw_faces_attrs", preset="tiny", sets=[f"data.data_dir={folder}", *SPLIT, *sets])


def test_pair_joins_splits_and_reports_missing_rows(tmp_path, capsys):
    fx = make_lfw_fixture(tmp_path / "lfw", rows=40, missing=2)
    data = load_data(_config(fx["folder"]), progress=False)
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [20, 8, 40 - 2 - 28]
    train = data.splits["train"]
    assert train.x.shape == (20, 3, 64, 64) and train.x.dtype == torch.uint8
    np.testing.assert_array_equal(train.x[0].permute(1, 2, 0).numpy(), fx["faces"][0])
    kept_rows = [i for i in range(40) if i + 3 not in {m[0] for m in fx["missing"]}]
    np.testing.assert_allclose(train.y.numpy(), fx["values"][kept_rows[:20]], rtol=1e-6)  # real values as given
    assert "2 attribute row(s) have no face" in capsys.readouterr().err
    assert data.info["y"]["names"][:2] == ["Male", "Asian"]
    np.testing.assert_allclose(data.info["y"]["mean"], train.y.mean(0).numpy(), rtol=1e-5)


def test_binarize_uses_the_sign(tmp_path):
    fx = make_lfw_fixture(tmp_path / "lfw", rows=40)
    data = load_data(_config(fx["folder"], "pair.binarize=true"), progress=False)
    y = data.splits["train"].y
    assert set(y.unique().tolist()) == {-1.0, 1.0}
    kept_rows = [i for i in range(40) if i + 3 not in {m[0] for m in fx["missing"]}]
    assert torch.equal(y > 0, torch.from_numpy(fx["values"][kept_rows[:20]] > 0))


def test_extracted_folder_works_like_the_zip(tmp_path):
    fx = make_lfw_fixture(tmp_path / "lfw", rows=40, zip=False)
    assert len(load_data(_config(fx["folder"]), progress=False).splits["train"]) == 20


def test_cmmkit_data_root_is_used(tmp_path, monkeypatch):
    make_lfw_fixture(tmp_path / "root" / "lfw", rows=40)
    monkeypatch.setenv("CMMKIT_DATA", str(tmp_path / "root"))
    cfg = build_config("lfw_faces_attrs", preset="tiny", sets=SPLIT)
    assert len(load_data(cfg, progress=False).splits["val"]) == 8


def test_offline_without_data_says_what_to_download_and_where(tmp_path, monkeypatch):
    import urllib.request

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("CMMKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError) as info:
        load_data(build_config("lfw_faces_attrs", preset="tiny"), progress=False)
    msg = str(info.value)
    assert "lfw_attributes.txt" in msg and "CMMKIT_DATA" in msg and "--data-dir" in msg
    assert str(tmp_path / "cache" / "lfw") in msg


def test_missing_attribute_file_lists_candidates(tmp_path):
    fx = make_lfw_fixture(tmp_path / "lfw", rows=40)
    fx["attributes"].rename(fx["folder"] / "lfw_attributes_binarized.txt")
    with pytest.raises(DataError, match="Found here: lfw_attributes_binarized.txt; pick one with "
                                        "--set pair.attributes_file=NAME"):
        load_data(_config(fx["folder"]), progress=False)


def test_corrupt_ppm_names_the_member(tmp_path):
    fx = make_lfw_fixture(tmp_path / "lfw", rows=40)
    bad_key = fx["keys"][3]
    src = zipfile.ZipFile(fx["zip"])
    members = {i.filename: src.read(i) for i in src.infolist()}
    src.close()
    members[f"lfwcrop_color/faces/{bad_key}.ppm"] = ppm_bytes(fx["faces"][3])[:500]
    with zipfile.ZipFile(fx["zip"], "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(DataError, match=bad_key):
        load_data(_config(fx["folder"]), progress=False)


def test_short_attribute_line_names_file_and_line(tmp_path):
    fx = make_lfw_fixture(tmp_path / "lfw", rows=40)
    lines = fx["attributes"].read_text().splitlines()
    lines[6] = "\t".join(lines[6].split("\t")[:40])
    fx["attributes"].write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"lfw_attributes.txt:7: expected 75 tab-separated fields"):
        load_data(_config(fx["folder"]), progress=False)


@pytest.mark.realdata
def test_real_mirror_through_the_pair(lfw_mirror):
    cfg = build_config("lfw_faces_attrs", sets=[f"data.data_dir={lfw_mirror}",
                                                "pair.attributes_file=lfw_attributes_binarized.txt"])
    data = load_data(cfg, progress=False)
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [10_000, 1_000, 2_142]
    assert len(data.info["y"]["names"]) == 73


@pytest.mark.parametrize("preset", ["default", "paper", "tiny"])
@pytest.mark.parametrize("model", ["cmma", "cvae", "vae", "cgan", "attribute_judge"])
def test_every_preset_validates_for_every_model(preset, model):
    cfg = build_config("lfw_faces_attrs", preset=preset, model=model)
    assert cfg.model.name == model
    if preset == "paper" and model == "cmma":
        assert (cfg.model.latent_dim, cfg.model.prior_hidden, cfg.train.optimizer.name) == (500, 800, "Adagrad")
