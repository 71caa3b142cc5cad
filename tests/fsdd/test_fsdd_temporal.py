"""The temporal log-mel encoder/decoder: shapes, the time-positional latent is read locally, the
Laplace likelihood is the exact density it samples from, option errors, and a tiny CMMA run."""

from __future__ import annotations

import math

import pytest
import torch
from cmmkit_fsdd.audio import LogMelModality, LogMelOptions
from cmmkit_fsdd.temporal import Laplace, TemporalDecoder, TemporalEncoder
from fsdd_fixtures import train_tiny

from cmmkit.distributions import DiagonalGaussian
from cmmkit.errors import ConfigError

MELS, FRAMES = 64, 126
INFO = {"mels": MELS, "frames": FRAMES, "sample_rate": 8000, "num_samples": 8000,
        "mean": [0.0] * MELS, "std": [1.0] * MELS}


def _modality(**opts) -> LogMelModality:
    return LogMelModality(LogMelOptions(decoder="temporal", temporal_channels=8, **opts), INFO)


def test_shapes_and_options():
    mod = _modality(latent_positions=16)
    enc, dec = mod.encoder(12), mod.decoder(32)
    assert isinstance(enc, TemporalEncoder) and isinstance(dec, TemporalDecoder)
    x = torch.randn(3, MELS, FRAMES)
    assert enc(x).shape == (3, 12)
    h = torch.randn(3, 32)
    assert dec.log_prob(h, x).shape == (3,)
    assert dec.generate(h, 0.0).shape == dec.generate(h, 1.0).shape == (3, MELS, FRAMES)
    assert isinstance(dec(h), DiagonalGaussian)
    assert isinstance(_modality(likelihood="laplace").decoder(32)(h), Laplace)
    assert _modality().decoder(7).generate(torch.randn(2, 7)).shape == (2, MELS, FRAMES)  # dense: any size
    with pytest.raises(ConfigError, match="latent_positions=16 must divide the latent size"):
        mod.decoder(24)
    assert isinstance(LogMelModality(LogMelOptions(base_channels=4, likelihood="laplace"), INFO).decoder(8)(
        torch.randn(2, 8)), Laplace)  # the conv decoder too
    with pytest.raises(ConfigError, match="needs decoder=conv, temporal or bands"):
        LogMelModality(LogMelOptions(base_channels=4, decoder="autoregressive", likelihood="laplace"), INFO).decoder(8)
    with pytest.raises(ConfigError, match="flat latent"):
        dec.log_prob(torch.randn(3, 5, 32), x)


@torch.no_grad()
def test_positional_latent_is_decoded_at_its_time():
    torch.manual_seed(0)
    dec = _modality(latent_positions=16).decoder(64).eval()  # 4 features at 16 positions of 8 frames
    z = torch.randn(1, 64)
    base = dec(z).mu
    for t, quiet in ((0, slice(40, None)), (15, slice(0, 88))):
        moved = z.view(1, 4, 16).clone()
        moved[:, :, t] += 5.0  # change only what z says at position t
        mu = dec(moved.view(1, 64)).mu
        changed = (mu - base).abs().amax(dim=1)[0] > 1e-6  # per frame
        assert not changed[quiet].any(), f"position {t} reached frames far from its own"
        assert changed[8 * t: 8 * t + 8].all()


@torch.no_grad()
def test_laplace_is_the_exact_density_it_samples_from():
    torch.manual_seed(0)
    mu, log_b = torch.randn(2, 3, 5), torch.randn(2, 3, 5) * 0.3 - 1
    dist = Laplace(mu, log_b, event_dims=2)
    x = torch.randn(2, 3, 5)
    expected = torch.distributions.Laplace(mu, log_b.exp()).log_prob(x).sum((1, 2))
    assert torch.allclose(dist.log_prob(x), expected, atol=1e-5)
    assert torch.equal(dist.rsample(0.0), mu)
    big = Laplace(torch.zeros(200_000), torch.full((200_000,), math.log(0.5)), event_dims=1)
    s = big.rsample(1.0)
    assert abs(float(s.abs().mean()) - 0.5) < 0.01  # E|x - mu| = b
    assert abs(float(big.rsample(0.5).abs().mean()) - 0.25) < 0.01
    # the decoder's variance bounds hold for the Laplace variance 2 b^2
    dec = _modality(likelihood="laplace", logvar_ceiling=-2.0).decoder(16)
    var = 2 * torch.exp(2 * dec(torch.randn(4, 16) * 100).log_scale)
    assert float(var.log().min()) >= -4.0 - 1e-5 and float(var.log().max()) <= -2.0 + 1e-5


def test_tiny_cmma_with_the_temporal_decoder(tmp_path):
    _, _, out = train_tiny(tmp_path, ["pair.x.decoder=temporal", "pair.x.temporal_channels=8",
                                      "pair.x.latent_positions=4", "pair.x.likelihood=laplace"], name="t")
    assert len(out) == 2 and out[0].waveform.shape == (8000,) and out[0].log_mel.shape == (MELS, FRAMES)
    assert not torch.equal(out[0].log_mel, out[1].log_mel)
