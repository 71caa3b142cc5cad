import torch
from torch.distributions import Independent, Normal, kl_divergence

from cmmkit.distributions import DiagonalGaussian, gaussian_kl, gaussian_log_prob


def _normal(mu, logvar, event_dims):
    return Independent(Normal(mu, torch.exp(0.5 * logvar)), event_dims)


def test_log_prob_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar, x = (torch.randn(5, 3, 4, 4, generator=g) for _ in range(3))
    ours = gaussian_log_prob(x, mu, logvar, event_dims=3)
    ref = _normal(mu, logvar, 3).log_prob(x)
    assert ours.shape == (5,)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-4)


def test_kl_matches_torch_distributions_and_is_zero_on_itself():
    g = torch.Generator().manual_seed(1)
    mq, lq, mp, lp = (torch.randn(7, 10, generator=g) for _ in range(4))
    ours = gaussian_kl(mq, lq, mp, lp)
    ref = kl_divergence(_normal(mq, lq, 1), _normal(mp, lp, 1))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gaussian_kl(mq, lq, mq, lq), torch.zeros(7))


def test_rsample_with_zero_noise_is_the_mean_and_otherwise_has_the_right_spread():
    d = DiagonalGaussian(torch.full((20000, 2), 3.0), torch.full((20000, 2), 2 * torch.log(torch.tensor(0.5))))
    assert torch.equal(d.rsample(0.0), d.mu)
    s = d.rsample()
    assert abs(float(s.mean()) - 3.0) < 0.02
    assert abs(float(s.std()) - 0.5) < 0.02
