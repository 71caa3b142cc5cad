"""The image modality's Gaussian decoder: the log-variance floor and its initial value."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from cmmkit.modalities.image import GaussianImageDecoder, ImageOptions


def _decoder(**opts: float | None) -> GaussianImageDecoder:
    torch.manual_seed(0)
    return GaussianImageDecoder(16, 3, 16, ImageOptions(base_channels=4, layers=2, **opts))


def test_logvar_init_sets_the_starting_variance() -> None:
    z = torch.randn(4, 16)
    start = _decoder(logvar_floor=-9.0, logvar_init=-4.0)(z).logvar
    assert start.shape == (4, 3, 16, 16)
    assert start.mean().item() == pytest.approx(-4.0, abs=0.05)
    default = _decoder(logvar_floor=-9.0)(z).logvar  # PyTorch's init: raw outputs near 0
    assert default.mean().item() > -1.0


def test_logvar_init_keeps_the_floor_and_the_mean() -> None:
    z = torch.randn(4, 16)
    a, b = _decoder(logvar_floor=-6.0, logvar_init=-3.0)(z), _decoder(logvar_floor=-6.0)(z)
    torch.testing.assert_close(a.mu, b.mu)  # only the log-variance bias moves
    assert (a.logvar > -6.0).all()


def test_logvar_init_must_be_above_the_floor() -> None:
    with pytest.raises(ValidationError, match="logvar_init .* must be above logvar_floor"):
        ImageOptions(logvar_floor=-6.0, logvar_init=-7.0)
