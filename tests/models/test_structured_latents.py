"""Structured latents (one Gaussian per position of y, with a mask): the distribution's masked
terms, CMMA's graph (x depends on y only through z), padding invariance of the bound, importance
sampling, editing and the clear refusals. On the tiny Multi30k fixture (text is positional)."""

from __future__ import annotations

import pytest
import torch
from multi30k.m30k_fixtures import make_multi30k
from torch.distributions import Independent, Normal, kl_divergence

from cmmkit import bound
from cmmkit.distributions import DiagonalGaussian
from cmmkit.errors import ConfigError
from cmmkit.modality import Code


# --- the distribution -------------------------------------------------------------------------
def test_masked_log_prob_and_kl_sum_over_real_positions_only():
    g = torch.Generator().manual_seed(0)
    mu, lv, mu2, lv2, z = (torch.randn(3, 5, 4, generator=g) for _ in range(5))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    q, p = DiagonalGaussian(mu, lv, 2, mask), DiagonalGaussian(mu2, lv2, 2, mask)
    lp, kl = q.log_prob(z), q.kl(p)
    assert lp.shape == (3,) and kl.shape == (3,)
    for b in range(3):
        n = int(mask[b].sum())
        ref_q = Independent(Normal(mu[b, :n], torch.exp(0.5 * lv[b, :n])), 2)
        ref_p = Independent(Normal(mu2[b, :n], torch.exp(0.5 * lv2[b, :n])), 2)
        torch.testing.assert_close(lp[b], ref_q.log_prob(z[b, :n]), rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(kl[b], kl_divergence(ref_q, ref_p), rtol=1e-5, atol=1e-4)
    # junk at the masked positions changes nothing
    junk = torch.where(mask[..., None], z, torch.full_like(z, 1e3))
    torch.testing.assert_close(q.log_prob(junk), lp)
    assert torch.equal(q.tile(2).mask, mask.repeat(2, 1)) and q.tile(2).log_prob(z.repeat(2, 1, 1)).shape == (6,)


def test_mask_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
        DiagonalGaussian(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), 2, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="shapes"):
        DiagonalGaussian(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), 2).kl(
            DiagonalGaussian(torch.zeros(2, 5, 4), torch.zeros(2, 5, 4), 2))


# --- models on text ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_models(tmp_path_factory):
    from cmmkit.config import build_config
    from cmmkit.runs import build_model, load_data

    folder = tmp_path_factory.mktemp("m30k_struct")
    make_multi30k(folder)
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CMMKIT_CACHE", str(folder / "cache"))
        for name in ("cmma", "cvae", "direct"):
            cfg = build_config("multi30k_en_de", preset="tiny", model=name, sets=[f"data.data_dir={folder}"])
            data = load_data(cfg, progress=False)
            torch.manual_seed(0)
            out[name] = build_model(cfg, data.info)[1].eval()
        out["data"] = data
    return out


def _batch(text_models, n=4):
    model = text_models["cmma"]
    raw = text_models["data"].splits["val"].get_batch(torch.arange(n))
    return raw, model.prepare(raw, dequantize=False)


def test_the_latent_has_one_gaussian_per_source_token(text_models):
    model = text_models["cmma"]
    raw, prepared = _batch(text_models)
    q, p = bound.posterior_and_prior(model, prepared["x"], prepared["y"])
    source_mask = prepared["y"]["mask"]
    assert p.mu.shape == (4, source_mask.shape[1], model.config.latent_dim) and p.event_dims == 2
    assert torch.equal(p.mask, source_mask) and torch.equal(q.mask, source_mask)
    terms = bound.elbo(model, prepared)
    assert terms.elbo.shape == (4,) and terms.kl.shape == (4,) and torch.isfinite(terms.elbo).all()


def test_the_decoder_receives_z_and_nothing_of_y(text_models, monkeypatch):
    """The paper's graph: x depends on y only through z. g is called with z (a Code whose mask is the
    source's positions) and x only, and for a fixed z the likelihood is the same whatever y is."""
    model = text_models["cmma"]
    raw, prepared = _batch(text_models)
    calls = []
    original = type(model.decoder).log_prob

    def spy(self, h, x):
        calls.append((h, x))
        return original(self, h, x)

    monkeypatch.setattr(type(model.decoder), "log_prob", spy)
    q = bound.posterior_and_prior(model, prepared["x"], prepared["y"])[0]
    z = q.sample_code(0.0)
    other = dict(prepared["y"])
    other["ids"] = prepared["y"]["ids"].flip(0)  # other sources of whatever content
    ll = model.log_likelihood(z, prepared["x"], prepared["y"])
    torch.testing.assert_close(model.log_likelihood(z, prepared["x"], other), ll)
    assert len(calls) == 2 and all(isinstance(h, Code) and x is prepared["x"] for h, x in calls)
    assert all(h.features.shape[:2] == prepared["y"]["ids"].shape for h, _ in calls)
    # a CVAE's decoder does read y: same z, other y, other likelihood
    cvae = text_models["cvae"]
    qc = cvae.posterior(prepared["x"], prepared["y"]).sample_code(0.0)
    assert not torch.allclose(cvae.log_likelihood(qc, prepared["x"], other), cvae.log_likelihood(qc, prepared["x"],
                                                                                                 prepared["y"]))


@pytest.mark.parametrize("name", ["cmma", "cvae", "direct"])
def test_bound_ignores_padding_of_source_and_target(text_models, name):
    """Masks reach every term: extra padding on both sides leaves the exact per-example bound unchanged."""
    model = text_models[name]
    _, prepared = _batch(text_models)
    padded = {side: {"ids": torch.nn.functional.pad(v["ids"], (0, 3), value=0),
                     "mask": torch.nn.functional.pad(v["mask"], (0, 3), value=False)} for side, v in prepared.items()}
    torch.testing.assert_close(_bound(model, prepared), _bound(model, padded), atol=1e-3, rtol=1e-5)


def _bound(model, prepared):
    with torch.no_grad():
        if model.name == "direct":
            return model.log_likelihood(prepared)
        return bound.elbo(model, prepared, noise_scale=0.0).elbo


def test_importance_sampling_on_structured_latents(text_models):
    """With the residual posterior at its start q = p, every weight is log p(x | z): IS with K = 1 is
    the one-sample likelihood, and the estimate has one value per example."""
    model = text_models["cmma"]
    _, prepared = _batch(text_models)
    torch.manual_seed(1)
    is1 = bound.importance_log_likelihood(model, prepared, k=1)
    torch.manual_seed(1)
    q = bound.posterior_and_prior(model, prepared["x"], prepared["y"])[0]
    ll = model.log_likelihood(q.sample_code(), prepared["x"], prepared["y"])
    torch.testing.assert_close(is1, ll, atol=1e-3, rtol=1e-5)
    est = bound.importance_log_likelihood(model, prepared, k=6, chunk=4)
    assert est.shape == (4,) and torch.isfinite(est).all()


def test_generate_and_edit_per_position(text_models):
    model = text_models["cmma"]
    raw, _ = _batch(text_models, 2)
    xp, yp = model.x.prepare(raw["x"], dequantize=False), model.y.prepare(raw["y"], dequantize=False)
    out = model.generate(yp, noise_scale=1.0, output_noise=0.0)
    assert out["ids"].shape[0] == 2
    same = model.edit(xp, yp, yp)  # y_new = y_orig: the posterior mean decoded
    recon = model.decoder.generate(Code(model.posterior(xp, yp).mean, yp["mask"]), 0.0)
    assert torch.equal(same["ids"], recon["ids"])
    longer = {k: v.clone() for k, v in yp.items()}
    longer["ids"] = torch.nn.functional.pad(longer["ids"], (0, 2), value=5)
    longer["mask"] = torch.nn.functional.pad(longer["mask"], (0, 2), value=True)
    with pytest.raises(ConfigError, match="same positions"):
        model.edit(xp, yp, longer)


def test_vae_and_x_only_posterior_refuse_a_positional_modality(text_models):
    from cmmkit.config import build_config
    from cmmkit.runs import build_model

    info = text_models["data"].info
    with pytest.raises(ConfigError, match="positions"):
        build_model(build_config("multi30k_en_de", preset="tiny", model="cmma",
                                 sets=["model.posterior=x", "model.residual_posterior=false",
                                       "model.share_y_encoder=false"]), info)
    with pytest.raises(ConfigError, match="vae cannot model a text x"):
        build_model(build_config("multi30k_en_de", preset="tiny", model="vae"), info)
