
import pytest
import torch

from cmmkit.errors import CheckpointError
from cmmkit.training.checkpoint import load_checkpoint, save_checkpoint


def _state():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    return {"optimizers": {"main": opt.state_dict()}, "rng": {"torch": torch.get_rng_state(), "python": (3, (1, 2), None)}}


def test_round_trip_restores_weights_state_and_meta(tmp_path):
    path = tmp_path / "ck.safetensors"
    weights = {"a.weight": torch.randn(2, 3), "b": torch.arange(4)}
    save_checkpoint(path, weights, _state(), {"epoch": 3, "config": {"x": [1, 2]}})
    w, state, meta = load_checkpoint(path)
    assert torch.equal(w["a.weight"], weights["a.weight"]) and torch.equal(w["b"], weights["b"])
    assert meta == {"epoch": 3, "config": {"x": [1, 2]}}
    assert state["rng"]["python"] == (3, (1, 2), None)
    assert state["rng"]["torch"].dtype == torch.uint8 and state["rng"]["torch"].numel() > 0
    opt = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    opt.load_state_dict(state["optimizers"]["main"])
    assert opt.state_dict()["state"][0]["exp_avg"].shape == (3,)


def test_truncated_checkpoint_is_reported(tmp_path):
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, {"w": torch.randn(100)}, {}, {"epoch": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="ck.safetensors: not a readable checkpoint"):
        load_checkpoint(path)


def test_tampered_tensor_or_metadata_is_reported(tmp_path):
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, {"w": torch.zeros(100)}, {}, {"epoch": 1})
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last tensor byte
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(path)
    save_checkpoint(path, {"w": torch.zeros(100)}, {}, {"epoch": 1})
    path.write_bytes(path.read_bytes().replace(b'\\"epoch\\": 1', b'\\"epoch\\": 9'))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(path)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, {"w": torch.ones(3)}, {}, {"epoch": 1})
    import cmmkit.training.checkpoint as ck

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ck, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"w": torch.zeros(3)}, {}, {"epoch": 2})
    w, _, meta = load_checkpoint(path)
    assert meta["epoch"] == 1 and torch.equal(w["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.safetensors"]


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "x")
    with pytest.raises(CheckpointError, match="no checkpoint here"):
        load_checkpoint(tmp_path / "missing")
