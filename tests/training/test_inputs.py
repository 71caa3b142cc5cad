"""The smaller faults of issue 12: each gets one clear error (no traceback), nothing allocated first."""

from __future__ import annotations

import errno
import json
import struct
import time
import zipfile
import zlib

import pytest
import torch
from lfw_fixtures import make_lfw_fixture
from safetensors.torch import save_file

from cmmkit.cli import main
from cmmkit.config import build_config
from cmmkit.errors import CheckpointError, ConfigError, DataError
from cmmkit.runs import load_run, resume, train
from cmmkit.training.checkpoint import _digest, load_checkpoint, save_checkpoint


def synthetic_args(out, *extra):
    return ["train", "--pair", "synthetic", "--out", str(out), "--no-progress", *extra]


def test_full_disk_is_a_clear_error_and_keeps_the_previous_checkpoint(tmp_path, synthetic_pair, monkeypatch, capsys):
    import cmmkit.training.checkpoint as ck

    train(build_config("synthetic"), tmp_path / "r", progress=False)
    before = (tmp_path / "r" / "checkpoint.safetensors").read_bytes()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck, "save_file", full)
    assert main(["train", "--resume", str(tmp_path / "r"), "--epochs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot write checkpoint" in err and "No space left on device" in err and "Traceback" not in err
    assert (tmp_path / "r" / "checkpoint.safetensors").read_bytes() == before
    assert not list((tmp_path / "r").glob(".*.tmp"))


def test_read_only_output_is_a_clear_error(tmp_path, synthetic_pair, monkeypatch, capsys):
    from cmmkit.training import lock

    real_open = lock.os.open

    def read_only(path, *a, **k):
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, *a, **k)

    monkeypatch.setattr(lock.os, "open", read_only)
    assert main(synthetic_args(tmp_path / "r")) == 2
    err = capsys.readouterr().err
    assert "Read-only file system" in err and "Traceback" not in err


def test_corrupted_deflate_stream_in_the_lfw_zip_is_a_data_error(tmp_path, capsys):
    fx = make_lfw_fixture(tmp_path / "lfw", rows=40)
    data = bytearray(fx["zip"].read_bytes())
    with zipfile.ZipFile(fx["zip"]) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(".ppm"))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start:start + 16] = b"\xff" * 16  # block type 3: invalid deflate
    fx["zip"].write_bytes(bytes(data))
    from cmmkit_lfw.data import FaceSource

    with pytest.raises(zlib.error):
        zipfile.ZipFile(fx["zip"]).read(info.filename)
    with pytest.raises(DataError, match="cannot read face"):
        FaceSource.open(fx["folder"]).read(info.filename.rsplit("/", 1)[1][:-4])
    assert main(["train", "--pair", "lfw_faces_attrs", "--preset", "tiny", "--data-dir", str(fx["folder"]),
                 "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "cannot read face" in capsys.readouterr().err


def _png_header(width, height):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_before_decoding(tmp_path, synthetic_pair, capsys):
    train(build_config("synthetic"), tmp_path / "r", progress=False)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(30000, 30000))
    with pytest.raises(DataError, match="too large to decode safely"):
        load_run(tmp_path / "r").x.from_user([bomb])


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfemodel: {name: cvae}\n", "not UTF-8 text"),
    (b"model: cvae\n", "section 'model' must be a mapping of settings, got str 'cvae' (did you mean `model: {name: cvae}`?)"),
    (b"- a\n- b\n", "expected a mapping with sections"),
])
def test_bad_config_files_are_clear_errors(tmp_path, synthetic_pair, capsys, content, message):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    assert main(synthetic_args(tmp_path / "r", "--config", str(path))) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_set_of_a_section_to_a_scalar_is_a_clear_error():
    with pytest.raises(ConfigError, match="section 'pair' must be a mapping"):
        build_config(sets=["pair=lfw_faces_attrs"])


def test_deeply_nested_checkpoint_header_is_a_clear_error(tmp_path):
    path = tmp_path / "ck.safetensors"
    tensors = {"model/w": torch.zeros(2)}
    meta, state = "[" * 200_000 + "]" * 200_000, json.dumps({})
    header = {"format": "1", "meta": meta, "state": state, "sha256": _digest(tensors, meta, state)}
    save_file(tensors, str(path), metadata=header)
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_checkpoint(path)


def test_generate_is_bounded_and_chunked(tmp_path, synthetic_pair, capsys):
    train(build_config("synthetic"), tmp_path / "r", progress=False)
    assert main(["generate", str(tmp_path / "r"), "--attr", "red=1", "--n", "100000",
                 "-o", str(tmp_path / "g.png")]) == 2
    assert "expected 1 to 10000 per call" in capsys.readouterr().err
    run = load_run(tmp_path / "r")
    images = run.generate({"red": 1}, n=300)  # more than one chunk of 256
    assert len(images) == 300 and images[299].tobytes() == run.generate({"red": 1})[0].tobytes()


def test_sizes_in_metadata_are_checked_against_saved_shapes_before_allocating(tmp_path, synthetic_pair):
    train(build_config("synthetic"), tmp_path / "r", progress=False)
    ck = tmp_path / "r" / "checkpoint.safetensors"
    weights, state, meta = load_checkpoint(ck)
    meta["config"]["model"]["latent_dim"] = 2 ** 34  # 4 TB of weights if built
    save_checkpoint(ck, weights, state, meta)
    (tmp_path / "r" / "config.yaml").unlink()
    for action in (lambda: load_run(tmp_path / "r"), lambda: resume(tmp_path / "r", progress=False)):
        began = time.time()
        with pytest.raises(CheckpointError, match="weights do not fit the model its config describes"):
            action()
        assert time.time() - began < 5


def test_stale_temporaries_are_removed_by_the_next_owner(tmp_path, synthetic_pair):
    train(build_config("synthetic"), tmp_path / "r", progress=False)
    stale = [tmp_path / "r" / ".checkpoint.safetensors.abc123.tmp", tmp_path / "r" / ".config.x1.yaml",
             tmp_path / "r" / "metrics.csv.tmp", tmp_path / "r" / ".tmpAb3dEf"]
    for p in stale:
        p.write_bytes(b"half")
    resume(tmp_path / "r", ["train.epochs=2"], progress=False)
    assert not any(p.exists() for p in stale)


def test_a_kill_before_the_first_checkpoint_leaves_an_explained_folder(tmp_path, synthetic_pair, capsys):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / ".lock").write_text(json.dumps({"pid": 4242, "host": "node7", "time": 0, "command": "cmmkit train"}))
    assert main(["train", "--resume", str(folder), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint yet" in err and "PID 4242 on node7" in err and "nothing was trained" in err
    assert main(synthetic_args(folder)) == 0  # and the same command starts it again


def test_failed_start_into_a_new_folder_leaves_nothing(tmp_path, synthetic_pair, capsys):
    assert main(synthetic_args(tmp_path / "r", "--set", "train.optimizer.name=Adamm")) == 2
    assert not (tmp_path / "r").exists()
