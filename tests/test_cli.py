"""The command line end to end on a generated LFW fixture: train, resume, load, generate, errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from lfw_fixtures import make_lfw_fixture
from PIL import Image

import cmmkit
from cmmkit.cli import main


@pytest.fixture
def lfw_fixture(tmp_path):
    return make_lfw_fixture(tmp_path / "lfw", rows=48, missing=1)


def _train_args(fx, out, *extra):
    return ["train", "--pair", "lfw_faces_attrs", "--preset", "tiny", "--data-dir", str(fx["folder"]),
            "--set", "pair.train_size=32", "--set", "pair.val_size=8", "--out", str(out), "--no-progress", *extra]


def test_train_resume_load_and_generate(tmp_path, lfw_fixture, capsys):
    run = tmp_path / "run"
    assert main(_train_args(lfw_fixture, run)) == 0
    assert {"config.yaml", "checkpoint.safetensors", "metrics.csv", "samples"} <= {p.name for p in run.iterdir()}
    assert (run / "samples" / "epoch_001.png").is_file()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert "epoch 2" in capsys.readouterr().out
    assert (run / "samples" / "epoch_002.png").is_file()
    assert len((run / "metrics.csv").read_text().splitlines()) == 3  # header + 2 epochs

    loaded = cmmkit.load_run(run)
    assert loaded.meta["epoch"] == 2
    faces = cmmkit.generate(loaded, [{"Male": 1, "Eyeglasses": 1}, {"Male": -1}])
    assert [f.size for f in faces] == [(64, 64), (64, 64)] and isinstance(faces[0], Image.Image)


def test_console_script_is_installed_and_lists_pairs():
    exe = Path(sys.executable).with_name("cmmkit")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "cmmkit.cli"]
    out = subprocess.run([*cmd, "pairs"], capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert "lfw_faces_attrs" in out.stdout and "image" in out.stdout and "named_vector" in out.stdout


@pytest.mark.parametrize("extra, message", [
    (["--set", "train.epoch=2"], "train.epoch: unknown key. Did you mean 'epochs'?"),
    (["--set", "pair.attributes_fil=x"], "Did you mean 'attributes_file'?"),
    (["--preset", "papr"], "unknown preset 'papr'"),
])
def test_config_errors_are_one_clear_line_without_traceback(tmp_path, lfw_fixture, capsys, extra, message):
    assert main(_train_args(lfw_fixture, tmp_path / "run", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_missing_data_folder(tmp_path, capsys):
    fx = {"folder": tmp_path / "nowhere"}
    assert main(_train_args(fx, tmp_path / "run")) == 2
    assert str(tmp_path / "nowhere") in capsys.readouterr().err


def test_resume_of_tampered_checkpoint_fails_clearly_and_keeps_the_file(tmp_path, lfw_fixture, capsys):
    run = tmp_path / "run"
    assert main(_train_args(lfw_fixture, run)) == 0
    ck = run / "checkpoint.safetensors"
    data = bytearray(ck.read_bytes())
    data[-5] ^= 0x55
    ck.write_bytes(bytes(data))
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    assert ck.read_bytes() == bytes(data)  # nothing overwritten
    assert main(["train", "--resume", str(tmp_path), "--no-progress"]) == 2
    assert "not a cmmkit run" in capsys.readouterr().err
