"""The conv log-mel decoder's residual refinement (``pair.x.refine_blocks``): the same kinds and shapes
of output and likelihood as the plain decoder, residual blocks at every resolution including the
full one, and the plain decoder's parameters untouched when it is 0 (saved runs still load)."""

from __future__ import annotations

import torch
from cmmkit_fsdd.audio import LogMelModality, LogMelOptions
from cmmkit_fsdd.spectrogram import GaussianSpectrogramDecoder, _Residual
from cmmkit_fsdd.temporal import Laplace

MELS, FRAMES = 64, 126
INFO = {"mels": MELS, "frames": FRAMES, "sample_rate": 8000, "num_samples": 8000,
        "mean": [0.0] * MELS, "std": [1.0] * MELS}


def _decoder(**opts) -> GaussianSpectrogramDecoder:
    return LogMelModality(LogMelOptions(base_channels=4, **opts), INFO).decoder(8)


def test_plain_decoder_is_unchanged_by_the_option():
    keys = set(_decoder().state_dict())
    assert keys == {"fc.0.weight", "fc.0.bias"} | {f"deconv.{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")}
    assert not any(isinstance(m, _Residual) for m in _decoder().modules())


def test_refined_decoder_shapes_likelihood_and_blocks():
    torch.manual_seed(0)
    dec = _decoder(refine_blocks=2, likelihood="laplace", logvar_floor=-6.0, logvar_ceiling=-4.0)
    blocks = [m for m in dec.deconv if isinstance(m, _Residual)]
    assert len(blocks) == 2 * 4  # 2 after each of the 3 upsamplings and 2 at full resolution
    assert blocks[-1].body[0].in_channels == 4  # the full-resolution features (base_channels)
    h, x = torch.randn(3, 8), torch.randn(3, MELS, FRAMES)
    d = dec(h)
    assert isinstance(d, Laplace) and d.mu.shape == (3, MELS, FRAMES)
    logvar = (2 * d.log_scale + torch.log(torch.tensor(2.0))).detach()  # variance 2 b^2
    assert float(logvar.min()) >= -6.0 - 1e-5 and float(logvar.max()) <= -4.0 + 1e-5
    lp = dec.log_prob(h, x)
    assert lp.shape == (3,) and torch.isfinite(lp).all()
    lp.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in dec.parameters())
    assert dec.generate(h, 0.0).shape == dec.generate(h, 1.0).shape == (3, MELS, FRAMES)
