"""The time-correlated residual of the conv log-mel decoder (``pair.x.residual_ar``,
:mod:`cmmkit_fsdd.correlated`): its log-density is the exact multivariate density of the
autoregression, samples carry the correlation and their innovations the per-bin density, the mean
(noise 0) is the decoder's mean, and rho starts at 0."""

from __future__ import annotations

import pytest
import torch
from cmmkit_fsdd.audio import LogMelModality, LogMelOptions
from cmmkit_fsdd.correlated import TimeCorrelated
from cmmkit_fsdd.temporal import Laplace

from cmmkit.api import ConfigError, DiagonalGaussian

MELS, FRAMES = 64, 126
INFO = {"mels": MELS, "frames": FRAMES, "sample_rate": 8000, "num_samples": 8000,
        "mean": [0.0] * MELS, "std": [1.0] * MELS}


def _decoder(**opts):
    return LogMelModality(LogMelOptions(base_channels=4, **opts), INFO).decoder(8)


def test_log_prob_is_the_exact_gaussian_of_the_autoregression():
    torch.manual_seed(0)
    b, m, t = 2, 3, 5
    mu, logvar, rho = torch.randn(b, m, t), torch.randn(b, m, t) * 0.3, torch.rand(b, m, t) * 1.8 - 0.9
    dist = TimeCorrelated(DiagonalGaussian(mu, logvar, event_dims=2), rho)
    x = torch.randn(b, m, t)
    # per band: e = A r with A unit lower bidiagonal (-rho below the diagonal), so r ~ N(0, A^-1 D A^-T)
    expected = torch.zeros(b, dtype=torch.float64)
    for i in range(b):
        for j in range(m):
            a = torch.eye(t, dtype=torch.float64) - torch.diag(rho[i, j, 1:].double(), -1)
            tril = torch.linalg.solve_triangular(a, torch.diag(torch.exp(0.5 * logvar[i, j].double())), upper=False)
            mvn = torch.distributions.MultivariateNormal(mu[i, j].double(), scale_tril=tril)
            expected[i] += mvn.log_prob(x[i, j].double())
    assert torch.allclose(dist.log_prob(x).double(), expected, atol=1e-4)
    # rho = 0 is the factorised density
    plain = DiagonalGaussian(mu, logvar, event_dims=2)
    assert torch.allclose(TimeCorrelated(plain, torch.zeros_like(rho)).log_prob(x), plain.log_prob(x))


def test_samples_carry_the_correlation_and_the_mean_is_unchanged():
    torch.manual_seed(1)
    n, m, t = 4000, 2, 40
    mu = torch.randn(1, m, t).expand(n, m, t)
    inner = Laplace(mu, torch.full((n, m, t), -1.0), event_dims=2)
    dist = TimeCorrelated(inner, torch.full((n, m, t), 0.8))
    assert torch.equal(dist.rsample(0.0), mu) and torch.equal(dist.mean, mu)
    r = dist.rsample(1.0) - mu
    late = r[..., 20:]  # far from r_{-1} = 0: stationary
    lag1 = (late[..., 1:] * late[..., :-1]).mean() / late.square().mean()
    assert abs(float(lag1) - 0.8) < 0.03
    # stationary variance of an AR(1): var(e) / (1 - rho^2), var(e) = 2 b^2
    assert abs(float(late.var()) / (2 * torch.exp(torch.tensor(-2.0)) / 0.36) - 1) < 0.06
    e = dist.innovations(mu + r) - mu  # the recursion undone: independent Laplace innovations again
    assert abs(float((e[..., 1:] * e[..., :-1]).mean() / e.square().mean())) < 0.03
    assert abs(float(e.abs().mean()) / float(torch.exp(torch.tensor(-1.0))) - 1) < 0.03  # E|e| = b


def test_decoder_option_starts_at_rho_zero_and_learns_it():
    torch.manual_seed(0)
    for refine in (0, 1):
        dec = _decoder(residual_ar=True, likelihood="laplace", refine_blocks=refine, logvar_floor=-6.0,
                       logvar_ceiling=-4.0)
        h, x = torch.randn(3, 8), torch.randn(3, MELS, FRAMES)
        d = dec(h)
        assert isinstance(d, TimeCorrelated) and isinstance(d.innovation, Laplace)
        assert torch.equal(d.rho, torch.zeros(3, MELS, FRAMES))
        assert torch.allclose(dec.log_prob(h, x), d.innovation.log_prob(x))
        dec.log_prob(h, x).sum().backward()
        last = dec.deconv[-1]
        grad = last.weight.grad[2] if isinstance(last, torch.nn.Conv2d) else last.weight.grad[:, 2]
        assert grad.abs().sum() > 0  # the rho map trains
        assert dec.generate(h, 1.0).shape == (3, MELS, FRAMES) and torch.equal(dec.generate(h, 0.0), d.mean)


def test_residual_ar_needs_the_conv_decoder():
    with pytest.raises(ConfigError, match="residual_ar needs decoder=conv"):
        _decoder(residual_ar=True, decoder="temporal")
