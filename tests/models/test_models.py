"""Every registered model trains through the one loop; baselines behave as the paper defines them."""

import csv

import pytest
import torch

from cmmkit import bound
from cmmkit.config import build_config
from cmmkit.runs import build_model, load_data, load_run, train
from cmmkit.training.checkpoint import load_checkpoint


@pytest.mark.parametrize("model", ["cmma", "cvae", "vae", "cgan", "attribute_judge"])
def test_every_model_trains_an_epoch_through_the_same_loop(tmp_path, synthetic_pair, model):
    run = train(build_config("synthetic", model=model, sets=["train.epochs=2"]), tmp_path / model, progress=False)
    rows = list(csv.DictReader(open(run.path / "metrics.csv")))
    assert len(rows) == 2
    _, state, _ = load_checkpoint(run.path / "checkpoint.safetensors")
    groups = {"cgan": {"discriminator", "generator"}}.get(model, {"main"})
    assert set(state["optimizers"]) == groups
    assert (run.path / "samples" / "epoch_002.png").exists() == (model != "attribute_judge")
    if model in {"cmma", "cvae", "vae"}:
        assert float(rows[-1]["val_bound"]) > float(rows[0]["val_bound"])
    if model == "cgan":
        assert {"train_loss_discriminator", "train_loss_generator", "val_d_real", "val_d_fake"} <= set(rows[0])
    if model != "attribute_judge":
        assert len(load_run(run.path).generate([{"red": 1}])) == 1


def test_cgan_steps_discriminator_and_generator_separately(synthetic_pair):
    cfg = build_config("synthetic", model="cgan")
    data = load_data(cfg, progress=False)
    _, model = build_model(cfg, data.info)
    groups = model.optimizer_groups()
    d_ids = {id(p) for p in groups["discriminator"]}
    assert d_ids.isdisjoint(id(p) for p in groups["generator"])
    assert len(d_ids) + len(groups["generator"]) == len(list(model.parameters()))
    p = model.prepare(data.splits["train"].get_batch(torch.arange(8)))
    fake = model._fake(p["y"])  # built once per step, shared by the two updates
    loss = model.generator_loss(fake, p["y"])
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in groups["generator"][-2:])
    model.zero_grad(set_to_none=True)
    loss, _ = model.discriminator_loss(p["x"], p["y"], fake.detach())
    loss.backward()
    assert all(p.grad is None for p in groups["generator"])  # fakes are detached for D's step


@pytest.mark.parametrize("name", ["cvae", "vae"])
def test_fixed_prior_baselines_use_standard_normal_and_bound_below_is(synthetic_pair, name):
    cfg = build_config("synthetic", model=name)
    data = load_data(cfg, progress=False)
    torch.manual_seed(0)
    _, model = build_model(cfg, data.info)
    model.eval()
    batch = model.prepare(data.splits["val"].get_batch(torch.arange(6)))
    p = model.prior(batch["y"])
    assert torch.equal(p.mu, torch.zeros_like(p.mu)) and torch.equal(p.logvar, torch.zeros_like(p.logvar))
    with torch.no_grad():
        elbo = torch.stack([bound.elbo(model, batch).elbo for _ in range(100)]).mean(0)
        is_ll = bound.importance_log_likelihood(model, batch, k=1000, chunk=250)
    assert torch.all(elbo < is_ll)


def test_vae_generation_ignores_y_and_cvae_uses_it(synthetic_pair):
    for name, same in (("vae", True), ("cvae", False)):
        cfg = build_config("synthetic", model=name)
        data = load_data(cfg, progress=False)
        _, model = build_model(cfg, data.info)
        y = torch.tensor([[1.0, 1, 1, 1], [-1.0, -1, -1, -1]])
        out = model.generate(y, noise_scale=0.0)
        assert torch.allclose(out[0], out[1]) == same


def test_judge_refuses_to_generate(synthetic_pair):
    cfg = build_config("synthetic", model="attribute_judge")
    data = load_data(cfg, progress=False)
    _, model = build_model(cfg, data.info)
    with pytest.raises(NotImplementedError):
        model.generate(torch.zeros(1, 4))


def test_residual_posterior_starts_as_the_prior_and_learns_away_from_it(synthetic_pair):
    cfg = build_config("synthetic", model="cmma", sets=["model.residual_posterior=true", "model.logvar_init=-4"])
    data = load_data(cfg, progress=False)
    torch.manual_seed(0)
    _, model = build_model(cfg, data.info)
    batch = model.prepare(data.splits["train"].get_batch(torch.arange(16)))
    p, q = model.prior(batch["y"]), model.posterior(batch["x"], batch["y"])
    assert torch.equal(q.mu, p.mu) and torch.equal(q.logvar, p.logvar)
    assert torch.allclose(bound.elbo(model, batch).kl, torch.zeros(16), atol=1e-5)
    assert abs(float(p.logvar.mean()) + 4) < 0.5  # logvar_init sets the starting variance
    loss, _ = model.training_loss(batch)
    loss.backward()
    head = model.posterior_head
    assert head.mu.weight.grad.abs().sum() > 0  # the correction is learnable from its zero start
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    q2 = model.posterior(batch["x"], batch["y"])
    assert not torch.allclose(q2.mu, model.prior(batch["y"]).mu)


def test_residual_posterior_needs_y_in_the_posterior(synthetic_pair):
    from cmmkit.errors import ConfigError

    with pytest.raises(ConfigError, match="residual_posterior=true needs posterior=xy"):
        build_config("synthetic", model="cmma", sets=["model.residual_posterior=true", "model.posterior=x"])


def test_residual_posterior_and_the_bound_share_one_pass_of_f(synthetic_pair):
    """Two passes of f differ under dropout; q must be built on the very p the KL compares it with."""
    from cmmkit.distributions import DiagonalGaussian

    cfg = build_config("synthetic", model="cmma", sets=["model.residual_posterior=true", "model.logvar_init=-4"])
    data = load_data(cfg, progress=False)
    _, model = build_model(cfg, data.info)
    batch = model.prepare(data.splits["train"].get_batch(torch.arange(16)))
    net = model.prior_net

    def noisy_prior(y):  # stands in for f under dropout: a different p at every call
        p = net(y)
        return DiagonalGaussian(p.mu + 0.1 * torch.randn_like(p.mu), p.logvar)

    model.prior = noisy_prior
    assert torch.allclose(bound.elbo(model, batch).kl, torch.zeros(16), atol=1e-5)
    assert torch.isfinite(bound.importance_log_likelihood(model, batch, k=4)).all()


def test_prior_logvar_max_bounds_the_prior_variance(synthetic_pair):
    cfg = build_config("synthetic", model="cmma", sets=["model.prior_logvar_max=-3", "model.logvar_init=2"])
    data = load_data(cfg, progress=False)
    _, model = build_model(cfg, data.info)
    y = model.prepare(data.splits["train"].get_batch(torch.arange(16)))["y"]
    with torch.no_grad():
        model.prior_net[-1].logvar.bias.fill_(50.0)  # whatever f outputs, the variance stays under the limit
        assert float(model.prior(y).logvar.max()) <= -3.0
        assert float(model.posterior(model.prepare(data.splits["train"].get_batch(torch.arange(16)))["x"], y)
                     .logvar.max()) > -3.0  # the posterior keeps the default limit


def test_residual_head_kl_is_free_of_the_prior():
    """KL(q || p) = 1/2 sum(dmu^2 + e^dlv - dlv - 1) whatever p's mean and variance."""
    from cmmkit.distributions import DiagonalGaussian
    from cmmkit.models.latent import ResidualGaussianHead

    torch.manual_seed(0)
    head = ResidualGaussianHead(5, 3)
    for layer in (head.mu, head.logvar):
        torch.nn.init.normal_(layer.weight, std=0.3)
    h = torch.randn(4, 5)
    dmu, dlv = head.mu(h), head.logvar(h)
    expected = 0.5 * (dmu.square() + dlv.exp() - dlv - 1).sum(-1)
    for scale in (-8.0, 0.0, 3.0):
        p = DiagonalGaussian(torch.randn(4, 3) * 5, torch.full((4, 3), scale))
        assert torch.allclose(head(h, p).kl(p), expected, atol=1e-4)
