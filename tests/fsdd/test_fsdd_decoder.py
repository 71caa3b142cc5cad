"""The autoregressive log-mel frame decoder: shapes, an exact likelihood that matches what generate
draws, causality, and a tiny CMMA run with it."""

from __future__ import annotations

import pytest
import torch
from cmmkit_fsdd.audio import LogMelModality, LogMelOptions
from cmmkit_fsdd.frames import FrameARDecoder
from fsdd_fixtures import train_tiny, val_bound

from cmmkit.distributions import gaussian_log_prob
from cmmkit.errors import ConfigError

MELS, FRAMES = 64, 126


def _decoder(seed: int = 0, r: int = 1) -> FrameARDecoder:
    torch.manual_seed(seed)
    dec = FrameARDecoder(6, MELS, FRAMES, upsampling=4, context=8, channels=4, prenet=16, hidden=24,
                         prenet_dropout=0.5, logvar_floor=-4.0, frames_per_step=r)
    return dec.eval()


def test_shapes_and_modality_option():
    info = {"mels": MELS, "frames": FRAMES, "sample_rate": 8000, "num_samples": 8000,
            "mean": [0.0] * MELS, "std": [1.0] * MELS}
    mod = LogMelModality(LogMelOptions(base_channels=4, decoder="autoregressive", ar_context=8, ar_prenet=16,
                                       ar_hidden=24), info)
    dec = mod.decoder(6)
    assert isinstance(dec, FrameARDecoder)
    h, x = torch.randn(3, 6), torch.randn(3, MELS, FRAMES)
    assert dec.log_prob(h, x).shape == (3,)
    assert dec.generate(h, 0.0).shape == dec.generate(h, 1.0).shape == (3, MELS, FRAMES)
    assert not isinstance(LogMelModality(LogMelOptions(base_channels=4), info).decoder(6), FrameARDecoder)
    with pytest.raises(ConfigError, match="multiple of ar_frames_per_step=4"):
        LogMelModality(LogMelOptions(base_channels=4, decoder="autoregressive", ar_frames_per_step=4), info).decoder(6)
    with pytest.raises(ConfigError, match="flat latent"):
        dec.log_prob(torch.randn(3, 5, 6), x)


@pytest.mark.parametrize("r", [1, 2])
@torch.no_grad()
def test_log_prob_is_the_density_generate_samples_from(r):
    dec, h = _decoder(r=r), torch.randn(4, 6)
    torch.manual_seed(1)
    x, mu, logvar = dec.sample(h, 1.0)
    # the teacher-forced likelihood of a sample is the sum of the per-frame Gaussians it was drawn from
    assert x.shape == (4, MELS, FRAMES) and mu.shape == logvar.shape == (4, FRAMES // r, r * MELS)
    expected = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(dec._steps(x)).sum((1, 2))
    assert torch.allclose(dec.log_prob(h, x), expected, rtol=1e-5, atol=1e-2)
    assert torch.allclose(dec.log_prob(h, x), gaussian_log_prob(dec._steps(x), mu, logvar, 2), rtol=1e-5)
    # noise 0: every frame is its conditional mean, so teacher forcing on it reproduces it exactly
    x0 = dec.generate(h, 0.0)
    mu0, _ = dec.distribution(h, x0)
    assert torch.allclose(dec._frames(mu0), x0, atol=1e-5)
    # and the same seed gives the same sample (generate is sample's first output)
    torch.manual_seed(1)
    assert torch.allclose(dec.generate(h, 1.0), x)
    # a sample's spread follows sigma: at noise 0.5 the standardised residuals have std ~0.5
    torch.manual_seed(2)
    xh, muh, lvh = dec.sample(h, 0.5)
    z = (dec._steps(xh) - muh) / torch.exp(0.5 * lvh)
    assert 0.45 < float(z.std()) < 0.55


def test_logvar_between_floor_and_ceiling():
    from cmmkit_fsdd.frames import bounded_logvar

    raw = torch.linspace(-30, 30, 601)
    assert torch.equal(bounded_logvar(raw, -4.0, None), -4.0 + torch.nn.functional.softplus(raw + 4.0))
    lv = bounded_logvar(raw, -4.0, -2.0)
    assert float(lv.min()) >= -4.0 and float(lv.max()) <= -2.0 and bool((lv.diff() >= 0).all())
    assert -3.1 < float(bounded_logvar(torch.zeros(1), -4.0, -2.0)) < -2.9
    dec = FrameARDecoder(6, MELS, FRAMES, upsampling=4, context=8, channels=4, prenet=16, hidden=24,
                         prenet_dropout=0.0, logvar_floor=-4.0, logvar_ceiling=-2.0)
    with torch.no_grad():
        _, logvar = dec.distribution(torch.randn(2, 6) * 50, torch.randn(2, MELS, FRAMES) * 50)
    assert float(logvar.max()) <= -2.0 and float(logvar.min()) >= -4.0


@pytest.mark.parametrize("r", [1, 2])
@torch.no_grad()
def test_causal_and_normalised_per_frame(r):
    dec, h = _decoder(r=r), torch.randn(2, 6)
    x = torch.randn(2, MELS, FRAMES)
    mu, logvar = dec.distribution(h, x)
    changed = x.clone()
    changed[:, :, 50:] += 3.0  # frames 50 on: steps up to the one holding frame 50 see only frames before them
    mu2, logvar2 = dec.distribution(h, changed)
    k = 50 // r + 1
    assert torch.allclose(mu[:, :k], mu2[:, :k]) and torch.allclose(logvar[:, :k], logvar2[:, :k])
    assert not torch.allclose(mu[:, k:], mu2[:, k:])
    assert float(logvar.min()) >= -4.0 - 1e-6  # the floor holds
    # one bin's density integrates to 1 over x (grid over +-8 sigma), so log_prob is a true density
    m, s = float(mu[0, 0, 0]), float(torch.exp(0.5 * logvar[0, 0, 0]))
    grid = torch.linspace(m - 8 * s, m + 8 * s, 4001)
    dens = torch.exp(torch.distributions.Normal(mu[0, 0, 0], torch.exp(0.5 * logvar[0, 0, 0])).log_prob(grid))
    assert abs(float(torch.trapezoid(dens, grid)) - 1) < 1e-3


def test_tiny_cmma_with_the_autoregressive_decoder(tmp_path):
    run, data, out = train_tiny(tmp_path, ["pair.x.decoder=autoregressive", "pair.x.ar_hidden=16",
                                           "pair.x.ar_prenet=8", "pair.x.ar_context=8"], name="ar")
    assert len(out) == 2 and out[0].waveform.shape == (8000,) and out[0].log_mel.shape == (MELS, FRAMES)
    bound = val_bound(run, data)
    assert bound.shape == (4,) and torch.isfinite(bound).all()
