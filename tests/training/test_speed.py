"""``train.speed`` (issue 14, speed on one machine): the fused optimizer by default and only where
the user did not choose, resumes across implementations without notes, the CUDA-only settings
leave a CPU batch untouched, and the LFW faces stay a view of the memory-mapped cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cmmkit.config import SpeedConfig, build_config
from cmmkit.errors import ConfigError
from cmmkit.modalities.image import ImageModality
from cmmkit.training import speed
from cmmkit.training.optim import make_optimizers, restore_optimizers


class _Net(nn.Module):
    name = "net"

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"main": list(self.parameters())}


def _train(*sets: str):
    return build_config("lfw_faces_attrs", preset="tiny", sets=list(sets)).train


@pytest.mark.parametrize(("sets", "fused"), [
    ((), True),  # Adam of the preset: fused by default
    (("train.optimizer.name=Adagrad",), True),
    (("train.speed.fused_optimizer=false",), None),
    (("train.optimizer.kwargs={foreach: false}",), None),  # the user's choice wins
    (("train.optimizer.kwargs={fused: false}",), False),
    (("train.optimizer.name=RMSprop",), None),  # no fused kernel: left as torch makes it
])
def test_fused_kernel_by_default_unless_chosen(sets, fused):
    opt = make_optimizers(_Net(), _train(*sets))["main"]
    assert opt.param_groups[0].get("fused") is fused


def test_fused_and_loop_adam_agree_to_rounding():
    torch.manual_seed(0)
    nets = [_Net(), _Net()]
    nets[1].load_state_dict(nets[0].state_dict())
    opts = [make_optimizers(nets[0], _train())["main"],
            make_optimizers(nets[1], _train("train.speed.fused_optimizer=false"))["main"]]
    x = torch.randn(8, 3, 5, 5)
    for _ in range(20):
        for net, opt in zip(nets, opts):
            opt.zero_grad()
            net.fc(net.conv(x).mean((2, 3))).square().sum().backward()
            opt.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_resume_across_implementations_keeps_state_and_notes_only_hyperparameters(tmp_path):
    net = _Net()
    old = make_optimizers(net, _train("train.speed.fused_optimizer=false"))
    net.fc(net.conv(torch.randn(2, 3, 5, 5)).mean((2, 3))).sum().backward()
    old["main"].step()
    state = {"optimizers": {"main": old["main"].state_dict()}}
    new = make_optimizers(net, _train("train.optimizer.lr=0.005"))
    notes = restore_optimizers(new, state, {"step": 1}, _train("train.optimizer.lr=0.005"), tmp_path / "ck")
    assert notes == ["main.lr: 0.002 -> 0.005"]  # not "main.fused: None -> True"
    assert new["main"].param_groups[0]["fused"] is True
    assert int(new["main"].state[net.fc.weight]["step"]) == 1
    new["main"].step()  # the loop's saved state runs under the fused kernel
    assert int(new["main"].state[net.fc.weight]["step"]) == 2


def test_speed_config_is_strict():
    with pytest.raises(ConfigError, match="speed"):
        build_config("lfw_faces_attrs", sets=["train.speed.autocast=fp8"])
    with pytest.raises(ConfigError, match="speed"):
        build_config("lfw_faces_attrs", sets=["train.speed.fast=true"])


def test_cpu_batches_are_left_as_they_are_by_default():
    cpu, sp = torch.device("cpu"), SpeedConfig()
    x = torch.rand(2, 3, 8, 8)
    assert speed.to_device({"x": x}, cpu, sp)["x"] is x
    assert speed.format_batch({"x": x}, cpu, sp)["x"] is x
    assert not speed.channels_last(cpu, sp) and speed.channels_last(torch.device("cuda"), sp)
    on = SpeedConfig(channels_last="on")
    out = speed.format_batch({"x": x, "y": torch.rand(2, 5)}, cpu, on)
    assert out["x"].is_contiguous(memory_format=torch.channels_last) and torch.equal(out["x"], x)
    net = _Net()
    speed.configure(net, cpu, on)
    assert net.conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_image_prepare_of_a_strided_gather_equals_the_contiguous_one():
    nhwc = torch.randint(0, 256, (6, 8, 8, 3), dtype=torch.uint8)
    view = nhwc.permute(0, 3, 1, 2)[torch.tensor([4, 1, 2])]  # as from the memory-mapped LFW cache
    assert not view.is_contiguous()
    mod = ImageModality(ImageModality.Options(), {"channels": 3, "height": 8, "width": 8})
    torch.manual_seed(1)
    a = mod.prepare(view)
    torch.manual_seed(1)
    b = mod.prepare(view.contiguous())
    assert a.is_contiguous() and torch.equal(a, b)


def _mapped_file(t: torch.Tensor) -> str | None:
    ptr = t.untyped_storage().data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split()
        lo, hi = (int(v, 16) for v in parts[0].split("-"))
        if lo <= ptr < hi:
            return parts[5] if len(parts) > 5 else None
    return None


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_lfw_faces_are_a_view_of_the_memory_mapped_cache(tmp_path, monkeypatch):
    from lfw_fixtures import make_lfw_fixture

    from cmmkit.runs import load_data

    monkeypatch.setenv("CMMKIT_CACHE", str(tmp_path / "cache"))
    fx = make_lfw_fixture(tmp_path / "lfw", n_people=6, rows=30, real_valued=False)
    cfg = build_config("lfw_faces_attrs", preset="tiny", sets=[f"data.data_dir={fx['folder']}",
                                                               "pair.train_size=20", "pair.val_size=5"])
    data = load_data(cfg, progress=False)
    train, val = data.splits["train"], data.splits["val"]
    where = _mapped_file(train.x)
    assert where is not None and where.endswith(".npy") and str(tmp_path / "cache") in where
    assert _mapped_file(val.x) == where  # the splits share the one mapping
    assert train.x.shape[1:] == (3, 64, 64)
    assert torch.equal(train.x[3].permute(1, 2, 0), torch.from_numpy(fx["faces"][3]))


def test_the_trainer_applies_train_speed(synthetic_pair, tmp_path):
    from cmmkit.runs import build_model, load_data
    from cmmkit.training.rundir import RunDir
    from cmmkit.training.trainer import Trainer

    cfg = build_config("synthetic", sets=["train.speed.channels_last=on", "train.speed.fused_optimizer=false"])
    data = load_data(cfg, progress=False)
    torch.manual_seed(0)
    _, model = build_model(cfg, data.info)
    trainer = Trainer(cfg, model, data, RunDir(tmp_path / "r"), progress=False)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert all(o.param_groups[0].get("fused") is None for o in trainer.optimizers.values())
    batch = trainer._prepare(data.splits["train"].get_batch(torch.arange(4)))
    assert batch["x"].is_contiguous(memory_format=torch.channels_last)
    logs, images, _ = trainer._train_epoch()
    assert images == len(data.splits["train"]) and all(torch.isfinite(torch.tensor(v)) for v in logs.values())


@pytest.mark.parametrize("mode", ["bf16", "auto"])
@pytest.mark.parametrize(("device", "native"), [("cpu", True), ("cpu", False), ("cuda", True), ("cuda", False)])
def test_bf16_autocast_only_where_the_hardware_computes_bf16(monkeypatch, caplog, device, native, mode):
    monkeypatch.setattr(speed, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native)
    expected = torch.bfloat16 if native else None
    assert speed.autocast_dtype(torch.device(device), SpeedConfig(autocast=mode)) is expected
    assert speed.autocast_dtype(torch.device(device), SpeedConfig()) is None  # off by default
    # asked for explicitly where it would be emulated: a warning; auto: float32 without one
    assert ("no native bf16" in caplog.text) == (mode == "bf16" and not native)


def test_bf16_autocast_of_the_loss_on_cpu_trains_in_float32_terms(synthetic_pair, monkeypatch):
    """The wrapped loss runs its convolutions in bf16, yet the bound's terms are formed in float32 and
    stay within bf16 rounding of the float32 loss; backward reaches every parameter."""
    from cmmkit.runs import build_model, load_data

    monkeypatch.setattr(speed, "cpu_has_native_bf16", lambda: True)  # emulated where absent: slow, still exact
    cfg = build_config("synthetic", sets=["train.speed.autocast=bf16"])
    data = load_data(cfg, progress=False)
    torch.manual_seed(0)
    _, model = build_model(cfg, data.info)
    batch = model.prepare(data.splits["train"].get_batch(torch.arange(8)))
    torch.manual_seed(1)
    reference, _ = model.training_loss(batch)
    speed.configure(model, torch.device("cpu"), cfg.train.speed)
    torch.manual_seed(1)
    loss, logs = model.training_loss(batch)
    assert loss.dtype == torch.float32 and all(v.dtype == torch.float32 for v in logs.values())
    assert loss.item() != reference.item()  # the forward pass did run in bf16
    torch.testing.assert_close(loss, reference, rtol=0.05, atol=0.0)
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


def test_gaussian_terms_of_bf16_outputs_are_float32():
    from cmmkit.distributions import DiagonalGaussian, gaussian_kl, gaussian_log_prob

    torch.manual_seed(0)
    x, mu, logvar = torch.rand(4, 300), torch.rand(4, 300), torch.randn(4, 300) - 3
    mu16, lv16 = mu.bfloat16(), logvar.bfloat16()
    lp = gaussian_log_prob(x, mu16, lv16, 1)
    assert lp.dtype == torch.float32
    torch.testing.assert_close(lp, gaussian_log_prob(x, mu16.float(), lv16.float(), 1))
    kl = gaussian_kl(mu16, lv16, torch.zeros_like(mu16), torch.zeros_like(lv16))
    assert kl.dtype == torch.float32
    masked = DiagonalGaussian(mu16.view(4, 3, 100), lv16.view(4, 3, 100), 2, torch.ones(4, 3, dtype=torch.bool))
    torch.testing.assert_close(masked.log_prob(x.view(4, 3, 100)), lp)
