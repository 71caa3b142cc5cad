"""Partial attribute specifications: the conditional base, ranges, validation."""

from __future__ import annotations

import pytest
import torch

from cmmkit.errors import DataError
from cmmkit.modalities import NamedVectorOptions
from cmmkit.modalities.vector import NamedVectorModality, vector_info


def _modality(train):
    return NamedVectorModality(NamedVectorOptions(), vector_info(["Male", "Mustache", "Smiling"], train))


def test_conditional_base_is_the_gaussian_conditional_mean():
    g = torch.Generator().manual_seed(0)
    male = torch.where(torch.rand(2000, generator=g) < 0.7, 1.0, -1.0)
    mustache = torch.where((male > 0) & (torch.rand(2000, generator=g) < 0.4), 1.0, -1.0)
    smiling = torch.where(torch.rand(2000, generator=g) < 0.5, 1.0, -1.0)  # independent of the rest
    train = torch.stack([male, mustache, smiling], 1)
    m = _modality(train)
    woman = m.from_user([{"Male": -1}])[0]
    t = train.double()
    mu, cov = t.mean(0), torch.cov(t.T)
    expected = mu[1:] + cov[1:, :1] @ torch.linalg.solve(cov[:1, :1], torch.tensor([-1.0], dtype=torch.float64) - mu[:1])
    torch.testing.assert_close(woman[1:].double(), expected.clamp(-1, 1), atol=1e-4, rtol=0)
    assert woman[1] < m.mean[1] - 0.1  # a woman gets less mustache than the average face
    assert abs(float(woman[2] - m.mean[2])) < 0.05  # an independent attribute stays at its mean
    plain = m.from_user([{"Male": -1}], base="mean")[0]
    torch.testing.assert_close(plain[1:], m.mean[1:])


def test_values_are_checked_against_the_training_range():
    m = _modality(torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]]))
    with pytest.raises(DataError, match=r"'Male'=2 is outside the training range \[-1, 1\]"):
        m.from_user([{"Male": 2}])
    with pytest.raises(DataError, match="Did you mean 'Smiling'"):
        m.from_user([{"Smilng": 1}])
    out = m.to_user(torch.tensor([[3.0, -5.0, 0.5]]))  # model outputs are clamped to the range
    assert out == [{"Male": 1.0, "Mustache": -1.0, "Smiling": 0.5}]


def test_runs_saved_without_statistics_fall_back_to_the_mean():
    m = NamedVectorModality(NamedVectorOptions(), {"names": ["a", "b"], "mean": [0.2, -0.4]})
    torch.testing.assert_close(m.from_user([{"a": 5}])[0], torch.tensor([5.0, -0.4]))  # no range known: no check
