"""Parzen-window log-likelihood: correctness on Gaussians, σ selection, chunking, memory check."""

import math

import pytest
import torch

from cmmkit.errors import CmmkitError, ConfigError, DataError
from cmmkit.evaluation.parzen import (
    PARZEN_NOTE,
    check_memory,
    parzen_log_likelihood,
    select_sigma,
    squared_distances,
)


def _gauss_ll(x, mu, var):
    """log N(x; mu, var I) per row."""
    return -0.5 * x.shape[1] * math.log(2 * math.pi * var) - ((x - mu) ** 2).sum(1) / (2 * var)


def _brute(x, samples, sigma):
    """The definition, term by term: log (1/S) Σ_s Π_d N(x_d; s_d, σ²)."""
    normal = torch.distributions.Normal(samples, sigma)
    return torch.logsumexp(normal.log_prob(x[:, None, :]).sum(-1), dim=1) - math.log(samples.shape[1])


def test_matches_the_definition():
    g = torch.Generator().manual_seed(0)
    x, s = torch.rand(4, 3, generator=g, dtype=torch.float64), torch.rand(4, 6, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(parzen_log_likelihood(x, s, 0.3), _brute(x, s, 0.3))


@pytest.mark.parametrize("d", [2, 3, 5])
def test_gaussian_estimate_approaches_true_log_density_and_sigma_is_sensible(d):
    g = torch.Generator().manual_seed(0)
    mu, s0, n_samples, n_test = 0.5, 0.1, 4000, 200
    pool = mu + s0 * torch.randn(n_samples, d, generator=g, dtype=torch.float64)
    x_val = mu + s0 * torch.randn(n_test, d, generator=g, dtype=torch.float64)
    x_test = mu + s0 * torch.randn(n_test, d, generator=g, dtype=torch.float64)
    samples = pool.expand(n_test, n_samples, d)  # every example's window uses the same samples (a view)

    sigma, grid, mean_ll = select_sigma(x_val, samples)
    # The selected σ is the grid's argmax, not just close to it.
    assert float(mean_ll[grid == sigma]) == float(mean_ll.max())
    # With many samples the window is narrow relative to s0, and of the order of the textbook
    # bandwidth for Gaussian data, s0 (4 / (D + 2))^(1/(D+4)) S^(-1/(D+4)) (Silverman): likelihood
    # cross-validation picks somewhat larger values, and the grid steps by 10^0.1 ~ 1.26.
    silverman = s0 * (4 / (d + 2)) ** (1 / (d + 4)) * n_samples ** (-1 / (d + 4))
    assert sigma < 0.6 * s0
    assert silverman / 2 <= sigma <= 2.5 * silverman, (sigma, silverman)

    # Compare with the true log-density at the *same* test points, so the sampling noise of the
    # test points (std sqrt(D/2)/sqrt(200) ~ 0.08 nats for the mean) cancels. What remains is the
    # estimator's bias, which is negative (Gibbs' inequality for the smoothed density, Jensen for
    # log of a finite-sample mean): kernel smoothing ~ D/4 (σ/s0)^4 plus a finite-S variance
    # term, a few hundredths of a nat here (measured <= 0.10 over seeds for D=5). 0.15 nats leaves
    # margin; and the error must shrink from S=100 to S=4000.
    truth = _gauss_ll(x_test, mu, s0**2)
    err = float((parzen_log_likelihood(x_test, samples, sigma) - truth).mean())
    few = pool[:100].expand(n_test, 100, d)
    err_few = float((parzen_log_likelihood(x_test, few, select_sigma(x_val, few)[0]) - truth).mean())
    assert -0.15 < err < 0.02, err
    assert abs(err) < abs(err_few), (err, err_few)


def test_single_and_multi_sigma_paths_agree():
    g = torch.Generator().manual_seed(1)
    x, s = torch.rand(5, 7, generator=g), torch.rand(5, 9, 7, generator=g)
    sigmas = torch.tensor([0.05, 0.1, 0.3])
    multi = parzen_log_likelihood(x, s, sigmas)
    assert multi.shape == (3, 5) and multi.dtype == torch.float64
    for i, sig in enumerate(sigmas.tolist()):
        torch.testing.assert_close(parzen_log_likelihood(x, s, sig), multi[i])
    assert parzen_log_likelihood(x, s, torch.tensor(0.1)).shape == (5,)  # 0-d tensor: one σ


def test_chunking_gives_the_same_answer():
    g = torch.Generator().manual_seed(2)
    x, s = torch.rand(3, 4, generator=g), torch.rand(3, 23, 4, generator=g)
    full = parzen_log_likelihood(x, s, torch.tensor([0.02, 0.2]), chunk=23)
    for chunk in (1, 5, 7, 100):
        torch.testing.assert_close(parzen_log_likelihood(x, s, torch.tensor([0.02, 0.2]), chunk=chunk), full)


def test_distances_do_not_cancel_far_from_the_origin():
    # ||x||² + ||s||² - 2 x·s at 1e4 cancels ~8e8 down to ~1e-5: percent-level error even in float64.
    x = torch.full((1, 8), 1e4, dtype=torch.float64)
    s = x[:, None, :] + torch.tensor([1e-3, 2e-3], dtype=torch.float64).reshape(1, 2, 1)
    expected = torch.tensor([[8 * (1e-3) ** 2, 8 * (2e-3) ** 2]], dtype=torch.float64)
    torch.testing.assert_close(squared_distances(x, s), expected, rtol=1e-6, atol=0)


def test_grid_is_extended_once_when_the_optimum_is_outside_it():
    g = torch.Generator().manual_seed(3)
    # Optimum below 0.01: points and samples spread by 0.004.
    x = 0.5 + 0.004 * torch.randn(50, 2, generator=g)
    s = 0.5 + 0.004 * torch.randn(50, 200, 2, generator=g)
    sigma, grid, mean_ll = select_sigma(x, s)
    assert math.isclose(float(grid[0]), 1e-3, rel_tol=1e-9) and len(grid) == 31 and len(mean_ll) == 31
    assert 1e-3 < sigma < 1e-2
    # Optimum above 1: one sample per example, far away (σ² ~ E||x - s||² / D = 1 + 25).
    x = torch.randn(200, 3, generator=g)
    s = 5 * torch.randn(200, 1, 3, generator=g)
    sigma, grid, _ = select_sigma(x, s)
    assert math.isclose(float(grid[-1]), 10.0, rel_tol=1e-9) and 1 < sigma < 10
    # Only once: an optimum two decades out stays at the extended edge.
    x = 0.5 + 1e-5 * torch.randn(20, 2, generator=g)
    s = 0.5 + 1e-5 * torch.randn(20, 50, 2, generator=g)
    sigma, grid, _ = select_sigma(x, s)
    assert math.isclose(sigma, 1e-3, rel_tol=1e-9) and math.isclose(float(grid[0]), 1e-3, rel_tol=1e-9)
    # An interior optimum leaves the grid alone.
    sigma, grid, _ = select_sigma(x, s, grid=torch.logspace(-7, -3, 9))
    assert len(grid) == 9 and 1e-7 < sigma < 1e-3


def test_check_memory_says_what_fits():
    check_memory(10, 10, 10, 4000)  # exactly at the budget is fine
    with pytest.raises(ConfigError) as info:
        check_memory(2142, 10_000, 12288, 8 * 2**30)
    msg = str(info.value)
    assert "S=10,000 samples of 12,288 dims for 2,142 examples need 1.05 TB" in msg
    assert "at most S=81 fit" in msg and "--parzen-samples" in msg and "--max-examples" in msg
    with pytest.raises(ConfigError, match="not even S=1 fits"):
        check_memory(10**6, 5, 12288, 2**20)


def test_bad_input_is_a_cmmkit_error():
    x, s = torch.rand(2, 3), torch.rand(2, 4, 3)
    with pytest.raises(ConfigError, match="finite and > 0"):
        parzen_log_likelihood(x, s, 0.0)
    with pytest.raises(ConfigError, match="finite and > 0"):
        select_sigma(x, s, grid=torch.tensor([0.1, -1.0]))
    with pytest.raises(DataError, match=r"samples of shape \(B, S, D\), got x \(2, 3\) and samples \(2, 4, 5\)"):
        parzen_log_likelihood(x, torch.rand(2, 4, 5), 0.1)
    with pytest.raises(CmmkitError, match="chunk"):
        parzen_log_likelihood(x, s, 0.1, chunk=0)
    assert "Theis" in PARZEN_NOTE and "unreliable" in PARZEN_NOTE
