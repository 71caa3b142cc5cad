"""ROC AUC per named dimension of y: do generated x show the condition they were generated from?

An attribute judge scores each generated image; the AUC of those scores against the attribute
labels that were asked for is the probability that a random image generated *with* the attribute
scores higher than one generated *without* it (0.5: the attribute is ignored, 1: always shown).
The same judge on real images gives the ceiling.

AUC is computed exactly through the Mann-Whitney U statistic with average ranks for ties,
``U = Σ rank(positives) - n⁺(n⁺ + 1)/2`` and ``AUC = U / (n⁺ n⁻)``: O(N log N), no thresholds,
and a tie between a positive and a negative counts one half, as in the pairwise definition.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cmmkit.errors import DataError


def _labels(labels: Tensor, what: str) -> Tensor:
    """Labels as bool; 0/1 integers or floats are accepted, anything else is an error."""
    if labels.dtype == torch.bool:
        return labels
    if not bool(torch.all((labels == 0) | (labels == 1))):
        raise DataError(f"{what}: labels must be bool (or 0/1), got values other than 0 and 1")
    return labels != 0


def _average_ranks(values: Tensor) -> Tensor:
    """1-based ranks of a 1-D tensor, tied values sharing the mean of their ranks."""
    _, inverse, counts = torch.unique(values, sorted=True, return_inverse=True, return_counts=True)
    last = torch.cumsum(counts, 0).to(torch.float64)  # rank of the last member of each tie group
    return (last - (counts.to(torch.float64) - 1) / 2)[inverse]


def roc_auc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve of ``scores`` (N,) for bool ``labels`` (N,); NaN if one class only.

    NaN rather than an error for a single class because a test split can lack an attribute
    entirely; :func:`mean_auc` skips such attributes.
    """
    if scores.dim() != 1 or labels.shape != scores.shape:
        raise DataError(f"roc_auc: expected scores and labels of the same shape (N,), got "
                        f"{tuple(scores.shape)} and {tuple(labels.shape)}")
    scores = scores.detach().to(device="cpu", dtype=torch.float64)
    if bool(torch.isnan(scores).any()):
        raise DataError("roc_auc: scores contain NaN; the judge produced invalid outputs")
    pos = _labels(labels.detach().cpu(), "roc_auc")
    n_pos = int(pos.sum())
    n_neg = pos.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    u = float(_average_ranks(scores)[pos].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def per_attribute_auc(scores: Tensor, labels: Tensor, names: list[str]) -> dict[str, float]:
    """AUC of column ``a`` of ``scores`` (N, A) against column ``a`` of ``labels``, keyed by ``names[a]``."""
    if scores.dim() != 2 or labels.shape != scores.shape:
        raise DataError(f"per_attribute_auc: expected scores and labels of the same shape (N, A), got "
                        f"{tuple(scores.shape)} and {tuple(labels.shape)}")
    if len(names) != scores.shape[1]:
        raise DataError(f"per_attribute_auc: {len(names)} names for {scores.shape[1]} attribute columns")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"per_attribute_auc: attribute names must be unique, repeated: {', '.join(dupes)}")
    return {name: roc_auc(scores[:, a], labels[:, a]) for a, name in enumerate(names)}


def mean_auc(aucs: dict[str, float]) -> float:
    """Mean of the defined AUCs (NaNs, from single-class attributes, are skipped); NaN if none."""
    values = [v for v in aucs.values() if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")
