"""The band-autoregressive log-mel decoder (``pair.x.decoder=bands``, :mod:`cmmkit_fsdd.bands`):
causal over mel bands with the receptive field it claims, an exact likelihood (the sum of the per-bin
densities generation draws from), windowed generation equal to the full teacher-forced pass, the
variance bounds, and errors for bad options."""

from __future__ import annotations

import math

import pytest
import torch
from cmmkit_fsdd.audio import LogMelModality, LogMelOptions
from cmmkit_fsdd.bands import BandARDecoder
from cmmkit_fsdd.temporal import Laplace

from cmmkit.api import ConfigError, DiagonalGaussian

MELS, FRAMES = 64, 126
INFO = {"mels": MELS, "frames": FRAMES, "sample_rate": 8000, "num_samples": 8000,
        "mean": [0.0] * MELS, "std": [1.0] * MELS}


def _decoder(**opts) -> BandARDecoder:
    torch.manual_seed(0)
    o = {"base_channels": 4, "band_channels": 8, "band_context": 4, "decoder": "bands", **opts}
    dec = LogMelModality(LogMelOptions(**o), INFO).decoder(8)
    assert isinstance(dec, BandARDecoder)
    return dec.eval()


def test_a_band_depends_only_on_the_bands_below_it_within_its_reach():
    dec = _decoder(band_layers=3, band_kernel=3)
    assert dec.reach == 7
    h, x = torch.randn(2, 8), torch.randn(2, MELS, FRAMES)
    base = dec.distribution(h, x).mean
    moved = x.clone()
    moved[:, 20] += 1.0
    changed = (dec.distribution(h, moved).mean - base).abs().amax(dim=(0, 2)) > 0
    assert changed.nonzero().flatten().tolist() == list(range(21, 28))


def test_noise_zero_generation_is_a_fixed_point_of_teacher_forcing():
    """Generation evaluates the head on a window of bands; this checks the window loses nothing."""
    dec = _decoder(likelihood="laplace", logvar_floor=-6.0, logvar_ceiling=-4.0)
    h = torch.randn(3, 8)
    x = dec.generate(h, 0.0)
    assert x.shape == (3, MELS, FRAMES)
    torch.testing.assert_close(dec.distribution(h, x).mean, x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("likelihood", ["gaussian", "laplace"])
def test_log_prob_is_the_sum_of_the_per_bin_densities_drawn_from(likelihood):
    dec = _decoder(likelihood=likelihood, logvar_floor=-6.0, logvar_ceiling=-2.0)
    h = torch.randn(2, 8)
    torch.manual_seed(1)
    x = dec.generate(h, 1.0)
    dist = dec.distribution(h, x)
    assert isinstance(dist, Laplace if likelihood == "laplace" else DiagonalGaussian)
    lp = dec.log_prob(h, x)
    assert lp.shape == (2,)
    if likelihood == "laplace":
        b = torch.exp(dist.log_scale)
        by_hand = (-torch.log(2 * b) - (x - dist.mu).abs() / b).sum(dim=(1, 2))
        var = 2 * b**2
    else:
        var = torch.exp(dist.logvar)
        by_hand = (-0.5 * torch.log(2 * math.pi * var) - (x - dist.mu) ** 2 / (2 * var)).sum(dim=(1, 2))
    torch.testing.assert_close(lp, by_hand, rtol=1e-5, atol=1e-2)
    var = var.detach()
    assert float(var.min()) >= math.exp(-6.0) * (1 - 1e-4) and float(var.max()) <= math.exp(-2.0) * (1 + 1e-4)
    # a drawn sample is not the location: the noise went in
    assert (x - dist.mean).abs().mean() > 0.01


def test_gradients_reach_the_trunk_and_the_head():
    dec = _decoder().train()
    h, x = torch.randn(3, 8), torch.randn(3, MELS, FRAMES)
    dec.log_prob(h, x).sum().backward()
    for name, p in dec.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_input_dropout_acts_in_training_only():
    dec = _decoder(band_input_dropout=0.5)
    h, x = torch.randn(2, 8), torch.randn(2, MELS, FRAMES)
    torch.testing.assert_close(dec.log_prob(h, x), dec.log_prob(h, x))  # evaluation: exact, deterministic
    dec.train()
    assert not torch.equal(dec.log_prob(h, x), dec.log_prob(h, x))


def test_bad_options_are_refused():
    with pytest.raises(ConfigError, match="band_time_kernel must be odd"):
        _decoder(band_time_kernel=4)
    with pytest.raises(ConfigError, match="needs decoder=conv, temporal or bands"):
        _decoder(decoder="autoregressive", likelihood="laplace")


def test_tiny_cmma_with_the_band_decoder_trains_generates_and_diagnoses(tmp_path):
    from cmmkit_fsdd.diagnose import diagnose
    from fsdd_fixtures import train_tiny, val_bound

    run, data, out = train_tiny(tmp_path, ["pair.x.decoder=bands", "pair.x.band_channels=4",
                                           "pair.x.band_context=2", "pair.x.likelihood=laplace"], name="bands")
    assert len(out) == 2 and out[0].waveform.shape == (8000,) and out[0].log_mel.shape == (MELS, FRAMES)
    bound = val_bound(run, data)
    assert bound.shape == (4,) and torch.isfinite(bound).all()

    class Listener:  # a stand-in judge that always hears "zero" from the first speaker
        def logits(self, audio):
            return torch.eye(10)[[0] * len(audio)], torch.eye(3)[[0] * len(audio)]

    report = diagnose(run, Listener(), data, split="val")
    assert 0.0 <= report["posterior mean, decoder mean"][0] <= 1.0
    assert report["decoder std in speech bins"] > 0  # the teacher-forced densities were read
    assert {"recording's bands 0-19, posterior decode above", "posterior decode's bands 0-19, recording above"} <= set(report)


def test_laplace_terms_of_bf16_outputs_are_float32():
    """Under train.speed.autocast the decoder's outputs are bf16; the bound's terms are not."""
    torch.manual_seed(0)
    x, mu, log_scale = torch.randn(2, 8, 30), torch.randn(2, 8, 30), torch.randn(2, 8, 30) - 2
    half = Laplace(mu.bfloat16(), log_scale.bfloat16(), event_dims=2)
    lp = half.log_prob(x)
    assert lp.dtype == torch.float32
    torch.testing.assert_close(lp, Laplace(mu.bfloat16().float(), log_scale.bfloat16().float(), 2).log_prob(x))
