"""ROC AUC via Mann-Whitney U against hand cases and a brute-force pairwise count."""

import math

import pytest
import torch

from cmmkit.errors import DataError
from cmmkit.evaluation.auc import mean_auc, per_attribute_auc, roc_auc


def _pairwise(scores, labels):
    """P(score of a positive > score of a negative) + ½ P(tie), counted pair by pair."""
    pos, neg = scores[labels], scores[~labels]
    wins = (pos[:, None] > neg[None, :]).double().sum() + 0.5 * (pos[:, None] == neg[None, :]).double().sum()
    return float(wins) / (len(pos) * len(neg))


def test_hand_cases():
    labels = torch.tensor([False, False, True, True])
    assert roc_auc(torch.tensor([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert roc_auc(torch.tensor([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert roc_auc(torch.full((4,), 0.3), labels) == 0.5
    assert roc_auc(torch.tensor([0.1, 0.5, 0.5, 0.9]), labels) == pytest.approx(0.875)  # one tied pair: ½
    assert roc_auc(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1])) == 1.0  # 0/1 labels


def test_random_case_matches_pairwise_count():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 20, (500,), generator=g).float()  # many ties
    labels = torch.rand(500, generator=g) < 0.3
    assert roc_auc(scores, labels) == pytest.approx(_pairwise(scores, labels), abs=1e-12)
    scores = torch.randn(300, generator=g)
    labels = torch.rand(300, generator=g) < scores.sigmoid()
    assert roc_auc(scores, labels) == pytest.approx(_pairwise(scores, labels), abs=1e-12)


def test_single_class_is_nan_and_skipped_by_the_mean():
    assert math.isnan(roc_auc(torch.rand(5), torch.ones(5, dtype=torch.bool)))
    assert math.isnan(roc_auc(torch.rand(5), torch.zeros(5, dtype=torch.bool)))
    scores = torch.tensor([[0.1, 0.5], [0.9, 0.4], [0.2, 0.3]])
    labels = torch.tensor([[False, True], [True, True], [False, True]])
    aucs = per_attribute_auc(scores, labels, ["Male", "Smiling"])
    assert list(aucs) == ["Male", "Smiling"] and aucs["Male"] == 1.0 and math.isnan(aucs["Smiling"])
    assert mean_auc(aucs) == 1.0
    assert mean_auc({"a": 0.5, "b": 1.0}) == 0.75
    assert math.isnan(mean_auc({"a": float("nan")})) and math.isnan(mean_auc({}))


def test_bad_input():
    with pytest.raises(DataError, match="same shape"):
        roc_auc(torch.rand(3), torch.ones(4, dtype=torch.bool))
    with pytest.raises(DataError, match="NaN"):
        roc_auc(torch.tensor([0.1, float("nan")]), torch.tensor([True, False]))
    with pytest.raises(DataError, match="0 and 1"):
        roc_auc(torch.rand(2), torch.tensor([2, 0]))
    with pytest.raises(DataError, match="1 names for 2 attribute columns"):
        per_attribute_auc(torch.rand(3, 2), torch.ones(3, 2, dtype=torch.bool), ["Male"])
    with pytest.raises(DataError, match="repeated: Male"):
        per_attribute_auc(torch.rand(3, 2), torch.ones(3, 2, dtype=torch.bool), ["Male", "Male"])
