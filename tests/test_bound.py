import math

import torch

from cmmkit import bound
from cmmkit.config import build_config
from cmmkit.runs import build_model, load_data


def _tiny_model(synthetic_pair):
    config = build_config("synthetic")
    torch.manual_seed(0)
    data = load_data(config, progress=False)
    _, model = build_model(config, data.info)
    return model.eval(), data


def test_bound_is_below_importance_sampled_log_likelihood_which_tightens_with_k(synthetic_pair):
    model, data = _tiny_model(synthetic_pair)
    raw = data.splits["val"].get_batch(torch.arange(8))
    torch.manual_seed(0)
    batch = model.prepare(raw)  # one dequantization shared by every estimate
    with torch.no_grad():
        elbo = torch.stack([bound.elbo(model, batch).elbo for _ in range(200)]).mean(0)
        is_small = torch.stack([bound.importance_log_likelihood(model, batch, k=5) for _ in range(40)]).mean(0)
        is_large = bound.importance_log_likelihood(model, batch, k=2000, chunk=500)
    assert torch.all(elbo < is_large), (elbo, is_large)
    assert float(is_small.mean()) < float(is_large.mean())


def test_importance_estimate_with_k1_equals_the_elbo_in_expectation(synthetic_pair):
    model, data = _tiny_model(synthetic_pair)
    batch = model.prepare(data.splits["val"].get_batch(torch.arange(4)))
    with torch.no_grad():
        is1 = torch.stack([bound.importance_log_likelihood(model, batch, k=1) for _ in range(400)]).mean(0)
        elbo = torch.stack([bound.elbo(model, batch).elbo for _ in range(400)]).mean(0)
    torch.testing.assert_close(is1, elbo, rtol=0.02, atol=2.0)


def test_bits_per_dim_of_uniform_density_is_eight_bits():
    dims = 3 * 16 * 16
    # the uniform density on [0,1]^D has log p = 0 and gives 8 bits per 8-bit dimension
    assert math.isclose(bound.bits_per_dim(0.0, dims, -dims * math.log(256)), 8.0)
