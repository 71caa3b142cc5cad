"""The model owns its training step (issue 15, item 5) and the trainer prepares each batch once
(item 3): spies count the conversions per step; gradients are averaged over ranks at each
optimizer's step, whatever the model's step does between."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp

from cmmkit.config import build_config
from cmmkit.hookspecs import hookimpl
from cmmkit.modalities.image import ImageModality
from cmmkit.models.cgan import CGAN, CGANConfig
from cmmkit.runs import train
from cmmkit.training.trainer import Trainer


@pytest.mark.parametrize("model", ["cmma", "cgan"])
def test_each_batch_is_prepared_once_and_the_cgan_builds_its_fakes_once(synthetic_pair, tmp_path, monkeypatch,
                                                                        model):
    counts = {"prepare": 0, "fake": 0}
    inside: list[tuple[int, int]] = []  # per step: (x prepared, fakes built) inside the model's step
    at_step: list[int] = []  # x prepare calls so far, as each step starts
    prepare, fake, trainer_step = ImageModality.prepare, CGAN._fake, Trainer.train_step

    def count_prepare(self, value, dequantize=True):
        counts["prepare"] += 1
        return prepare(self, value, dequantize)

    def count_fake(self, y, noise_scale=1.0):
        counts["fake"] += 1
        return fake(self, y, noise_scale)

    def step(self, batch):
        at_step.append(counts["prepare"])
        before = dict(counts)
        logs = trainer_step(self, batch)
        inside.append((counts["prepare"] - before["prepare"], counts["fake"] - before["fake"]))
        return logs

    monkeypatch.setattr(ImageModality, "prepare", count_prepare)
    monkeypatch.setattr(CGAN, "_fake", count_fake)
    monkeypatch.setattr(Trainer, "train_step", step)
    train(build_config("synthetic", model=model, sets=["train.epochs=1"]), tmp_path / "r", progress=False)
    assert len(at_step) == 4  # the synthetic train split: 4 batches
    assert at_step == [1, 2, 3, 4]  # one conversion per batch, before the step
    assert inside == [(0, 1 if model == "cgan" else 0)] * 4  # the step converts nothing; one set of fakes


def test_cgan_step_updates_discriminator_then_generator_on_the_same_fakes(synthetic_pair):
    from cmmkit.runs import build_model, load_data
    from cmmkit.training.distributed import Dist
    from cmmkit.training.optim import make_optimizers
    from cmmkit.training.step import StepOptimizers

    cfg = build_config("synthetic", model="cgan")
    data = load_data(cfg, progress=False)
    torch.manual_seed(0)
    _, model = build_model(cfg, data.info)
    batch = model.prepare(data.splits["train"].get_batch(torch.arange(8)))
    seen: list[tuple[str, torch.Tensor]] = []
    discriminate = model.discriminate
    model.discriminate = lambda x, y: (seen.append(("D", x.detach().clone())), discriminate(x, y))[1]
    optimizers = StepOptimizers(make_optimizers(model, cfg.train), Dist())
    d_before = [p.detach().clone() for p in model.optimizer_groups()["discriminator"]]
    logs = model.train_step(batch, optimizers)
    assert set(logs) == {"loss_discriminator", "d_real", "d_fake", "d_mismatch", "loss_generator"}
    assert len(seen) == 2 and torch.equal(seen[0][1], seen[1][1])  # D's fakes are G's fakes
    assert any(not torch.equal(a, p) for a, p in zip(d_before, model.optimizer_groups()["discriminator"]))


def test_a_model_with_two_groups_and_no_step_of_its_own_is_told_what_to_write(synthetic_pair):
    from cmmkit.models.base import ConditionalModel
    from cmmkit.training.distributed import Dist
    from cmmkit.training.step import StepOptimizers

    class Bare(ConditionalModel):
        name = "bare"
        evaluate = generate = None  # type: ignore[assignment]

    model = Bare(None, synthetic_pair, synthetic_pair)  # type: ignore[arg-type]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(NotImplementedError, match="neither training_loss.*nor its own train_step"):
        model.train_step({}, StepOptimizers({"main": opt}, Dist()))
    with pytest.raises(TypeError, match="2 optimizer groups .* steps them in its own train_step"):
        StepOptimizers({"a": opt, "b": opt}, Dist()).only()


def _average_on_rank(rank: int, world: int, init: str, out: dict) -> None:
    import torch.distributed as dist

    from cmmkit.training.distributed import Dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        a, b, c = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
        a.grad = torch.full((2,), float(rank + 1))  # ranks 1 and 2 -> mean 1.5
        b.grad = torch.ones(2) * 4 if rank == 0 else None  # missing on rank 1: counts as zeros -> 2
        Dist(rank=rank, world=world).average_gradients_([a, b, c])
        d = torch.nn.Parameter(torch.zeros(3))
        d.grad = torch.full((3,), 2.0 * rank)  # every rank has it: no flags read -> mean 1
        Dist(rank=rank, world=world).average_gradients_([d])
        out[rank] = (a.grad.tolist(), b.grad.tolist(), c.grad, d.grad.tolist())
    finally:
        dist.destroy_process_group()


def test_gradients_are_averaged_over_ranks_as_ddp_did(tmp_path):
    with mp.Manager() as manager:
        out = manager.dict()
        init = f"file://{tmp_path / 'rendezvous'}"
        mp.spawn(_average_on_rank, args=(2, init, out), nprocs=2, join=True)
        results = dict(out)
    for rank in (0, 1):
        a, b, c, d = results[rank]
        assert a == [1.5, 1.5] and b == [2.0, 2.0] and c is None and d == [1.0, 1.0, 1.0]


class _TwoCriticConfig(CGANConfig):
    name: str = "cgan_2critic"


class _TwoCritic(CGAN):
    """A plugin's GAN with two discriminator updates per generator update (n-critic, WGAN-style):
    a step the old per-optimizer contract could not express, trained by the unchanged trainer."""

    name = "cgan_2critic"
    Config = _TwoCriticConfig

    def train_step(self, batch, optimizers):
        x, y = batch["x"], batch["y"]
        for _ in range(2):
            d_loss, logs = self.discriminator_loss(x, y, self._fake(y).detach())
            optimizers["discriminator"].minimize(d_loss)
        g_loss = self.generator_loss(self._fake(y), y)
        optimizers["generator"].minimize(g_loss)
        return {"loss_discriminator": d_loss.detach(), **logs, "loss_generator": g_loss.detach()}


class _Plugin:
    @hookimpl
    def register_models(self, register):
        register(_TwoCritic)


def test_a_plugin_model_owning_an_n_critic_step_trains_and_resumes_through_the_one_trainer(synthetic_pair,
                                                                                             tmp_path):
    from cmmkit.runs import resume
    from cmmkit.testing import registered
    from cmmkit.training.checkpoint import load_checkpoint

    adam = "{name: Adam, lr: 0.001}"
    sets = ["train.epochs=1", f"train.group_optimizers.discriminator={adam}", f"train.group_optimizers.generator={adam}"]
    with registered(_Plugin(), name="two-critic-test-plugin"):
        train(build_config("synthetic", model="cgan_2critic", sets=sets), tmp_path / "r", progress=False)
        _, state, meta = load_checkpoint(tmp_path / "r" / "checkpoint.safetensors")
        steps = {g: int(s["state"][0]["step"]) for g, s in state["optimizers"].items()}
        assert meta["step"] == 4 and steps == {"discriminator": 8, "generator": 4}
        resume(tmp_path / "r", overrides={"train": {"epochs": 2}}, progress=False)
        _, state, meta = load_checkpoint(tmp_path / "r" / "checkpoint.safetensors")
        assert {g: int(s["state"][0]["step"]) for g, s in state["optimizers"].items()} == {"discriminator": 16,
                                                                                           "generator": 8}


class _Line(torch.nn.Module):
    """A one-weight model with a default-step loss: (w . x - 1)^2 summed over the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))
        self.unused = torch.nn.Parameter(torch.zeros(1))  # never reached by the loss

    def training_loss(self, batch):
        loss = ((batch["x"] @ self.w - 1) ** 2).sum()
        return loss, {}


def _ddp_on_rank(rank: int, world: int, init: str, out: dict) -> None:
    import torch.distributed as dist

    from cmmkit.training.distributed import Dist, data_parallel_loss
    from cmmkit.training.step import StepOptimizers

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        model, d = _Line(), Dist(rank=rank, world=world)
        calls = []
        average = d.average_gradients_
        object.__setattr__(d, "average_gradients_", lambda ps: (calls.append(len(ps)), average(ps)))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        optimizers = StepOptimizers({"main": opt}, d, ddp=data_parallel_loss(model, torch.device("cpu")))
        x = torch.tensor([[1.0, 0.0]]) if rank == 0 else torch.tensor([[0.0, 2.0]])
        loss, _ = optimizers.training_loss(model, {"x": x})  # through DDP: averaged in backward
        optimizers.only().minimize(loss)
        after_ddp = model.w.detach().clone().tolist()
        loss = ((x @ model.w - 1) ** 2).sum()  # a model's own loss (a GAN's): averaged at step()
        optimizers.only().minimize(loss)
        out[rank] = (after_ddp, model.w.detach().tolist(), calls)
    finally:
        dist.destroy_process_group()


def test_the_default_step_runs_in_ddp_and_a_models_own_loss_is_averaged_at_step(tmp_path):
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_ddp_on_rank, args=(2, f"file://{tmp_path / 'rdzv'}", out), nprocs=2, join=True)
        results = dict(out)
    # rank 0: grad of (w0 - 1)^2 at w=1 is 0; rank 1: grad of (2 w1 - 1)^2 is (0, 4(2-1)) = (0, 4);
    # mean (0, 2), SGD 0.1 -> w = (1, 0.8) on both ranks (a rank-local update would give (1, 0.6) on rank 1)
    for rank in (0, 1):
        after_ddp, after_own, calls = results[rank]
        assert after_ddp == pytest.approx([1.0, 0.8])
        assert calls == [2]  # DDP's step skipped the manual average; the model's own loss used it once
    assert results[0][1] == pytest.approx(results[1][1])  # still in sync after the manual average


def test_grad_clip_norm_clips_each_optimizers_gradients_before_it_steps():
    from cmmkit.training.distributed import Dist
    from cmmkit.training.step import StepOptimizers

    w = torch.nn.Parameter(torch.zeros(4))
    for clip, expected in ((None, 40.0), (2.0, 2.0)):
        w.data.zero_()
        opts = StepOptimizers({"main": torch.optim.SGD([w], lr=1.0)}, Dist(), clip_norm=clip)
        opts["main"].minimize((w * torch.tensor([20.0, 20.0, 20.0, 20.0])).sum())  # gradient norm 40
        assert float(w.detach().norm()) == pytest.approx(expected)  # SGD with lr 1 moves by the gradient


def test_grad_clip_norm_is_validated():
    from cmmkit.config import build_config
    from cmmkit.errors import ConfigError

    assert build_config("lfw_faces_attrs", sets=["train.grad_clip_norm=100"]).train.grad_clip_norm == 100
    with pytest.raises(ConfigError, match="grad_clip_norm"):
        build_config("lfw_faces_attrs", sets=["train.grad_clip_norm=0"])
