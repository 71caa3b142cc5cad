"""Parzen-window (Gaussian kernel density) log-likelihood, as in §4.4 / Table 2 of the paper.

For each example b we fit a Gaussian Parzen window to S samples drawn from the model's p(x | y_b)
and evaluate the true x_b under it:

    log p̂(x_b) = logsumexp_s(-||x_b - s||² / 2σ²) - log S - D/2 · log(2πσ²)

σ is chosen on the validation split (:func:`select_sigma`). Squared distances are the expensive
part and do not depend on σ, so they are computed once and every candidate σ reuses them.

They are computed as direct ``(x - s)²`` sums in float64, never as ``||x||² + ||s||² - 2x·s``: for
close points (exactly the ones that dominate the logsumexp at small σ) that expansion cancels
catastrophically. Samples are processed ``chunk`` at a time to bound the float64 temporaries.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cmmkit.errors import ConfigError, DataError

PARZEN_NOTE = (
    "Parzen-window estimates are reported for parity with the paper and are known to be unreliable "
    "in high dimension (Theis, van den Oord & Bethge 2016, \"A note on the evaluation of generative "
    "models\"); prefer the variational bound and the importance-sampled estimate."
)

_CHUNK_BYTES = 16 * 2**20  # float64 (B, chunk, D) temporaries: small enough for the allocator to reuse


def _sigmas(sigma: float | Tensor) -> tuple[Tensor, bool]:
    """σ as a float64 1-D tensor, and whether the caller passed a single value."""
    t = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu()
    single = t.dim() == 0
    t = t.reshape(-1) if single else t
    if t.dim() != 1 or t.numel() == 0:
        raise ConfigError(f"Parzen sigma: expected a positive number or a non-empty 1-D tensor, got shape "
                          f"{tuple(t.shape)}")
    if not bool(torch.all(torch.isfinite(t) & (t > 0))):
        raise ConfigError(f"Parzen sigma: every value must be finite and > 0, got {t.tolist()}")
    return t, single


def squared_distances(x: Tensor, samples: Tensor, chunk: int | None = None) -> Tensor:
    """``||x_b - samples[b, s]||²`` as a float64 (B, S) tensor, ``chunk`` samples at a time.

    The default chunk keeps the float64 (B, chunk, D) difference under ~16 MB (larger temporaries are
    mapped and unmapped on every chunk, which costs more system time than the arithmetic).
    """
    if x.dim() != 2 or samples.dim() != 3 or samples.shape[0] != x.shape[0] or samples.shape[2] != x.shape[1]:
        raise DataError(f"Parzen inputs: expected x of shape (B, D) and samples of shape (B, S, D), got x "
                        f"{tuple(x.shape)} and samples {tuple(samples.shape)}")
    b, s, d = samples.shape
    if s == 0:
        raise DataError("Parzen inputs: samples has S=0 samples per example; need at least 1")
    if chunk is None:
        chunk = max(1, _CHUNK_BYTES // max(1, b * d * 8))
    if chunk < 1:
        raise ConfigError(f"Parzen chunk: expected a positive number of samples per chunk, got {chunk}")
    x64 = x.detach().to(torch.float64).unsqueeze(1)
    out = torch.empty(b, s, dtype=torch.float64, device=x.device)
    for start in range(0, s, chunk):
        part = samples[:, start:start + chunk].detach().to(device=x.device, dtype=torch.float64)
        out[:, start:start + chunk] = (x64 - part).square().sum(-1)
    return out


def _ll_from_distances(d2: Tensor, dims: int, sigmas: Tensor) -> Tensor:
    """(G, B) Parzen log-likelihoods from (B, S) squared distances, one σ at a time (bounded memory)."""
    log_s = math.log(d2.shape[1])
    rows = []
    for sig in sigmas.tolist():
        var = sig * sig
        rows.append(torch.logsumexp(d2 / (-2.0 * var), dim=1) - log_s - 0.5 * dims * math.log(2 * math.pi * var))
    return torch.stack(rows)


def parzen_log_likelihood(x: Tensor, samples: Tensor, sigma: float | Tensor, chunk: int | None = None) -> Tensor:
    """Per-example Parzen log-likelihood ``log (1/S) Σ_s N(x_b; samples[b, s], σ² I)`` in nats.

    ``x`` is (B, D), ``samples`` is (B, S, D) (the S samples generated for example b). A float or
    0-d ``sigma`` gives shape (B,); a 1-D tensor of G candidates gives (G, B), sharing one pass
    over the distances. The result is float64 on ``x``'s device: values are O(10⁴) nats for
    images and the logsumexp at small σ needs the headroom.
    """
    sigmas, single = _sigmas(sigma)
    ll = _ll_from_distances(squared_distances(x, samples, chunk), x.shape[1], sigmas)
    return ll[0] if single else ll


def _extension(grid: Tensor, low: bool) -> Tensor:
    """One more decade beyond the low or high edge of ``grid``, at the grid's own density."""
    lo, hi = math.log10(float(grid[0])), math.log10(float(grid[-1]))
    per_decade = (len(grid) - 1) / (hi - lo) if hi > lo else 10.0
    n = max(1, round(per_decade))
    if low:
        return torch.logspace(lo - 1, lo, n + 1, dtype=torch.float64)[:-1]
    return torch.logspace(hi, hi + 1, n + 1, dtype=torch.float64)[1:]


def select_sigma(x_val: Tensor, samples_val: Tensor, grid: Tensor | None = None,
                 chunk: int | None = None) -> tuple[float, Tensor, Tensor]:
    """Choose σ by maximising the mean validation Parzen log-likelihood over a grid.

    Returns ``(sigma, grid, mean_ll)`` with ``mean_ll[i]`` the mean over validation examples for
    ``grid[i]`` (both float64, sorted ascending). The default grid is ``torch.logspace(-2, 0, 21)``
    (σ from 0.01 to 1, sensible for data scaled to [0, 1]).

    If the best σ is at an edge of the grid, the optimum may lie outside it, so the grid is
    extended *once* by one decade on that side (same points per decade) and the search repeated;
    the returned grid includes the extension. If the best σ is still at the new edge it is
    returned as is; callers can detect this as ``sigma in (grid[0], grid[-1])`` and should widen
    the grid themselves, since an unbounded search would chase a degenerate (e.g. S=1) estimate.
    """
    if grid is None:
        grid = torch.logspace(-2, 0, 21, dtype=torch.float64)  # σ in 0.01..1, for data in [0, 1]
    grid, _ = _sigmas(grid)
    grid = torch.unique(grid)  # sorted ascending, duplicates dropped
    d2 = squared_distances(x_val, samples_val, chunk)
    dims = x_val.shape[1]
    mean_ll = _ll_from_distances(d2, dims, grid).mean(1).cpu()
    best = int(torch.argmax(mean_ll))
    if best in (0, len(grid) - 1):
        # A single-point grid is at both edges; extend downwards first (the usual failure: σ too big).
        extra = _extension(grid, low=best == 0)
        extra_ll = _ll_from_distances(d2, dims, extra).mean(1).cpu()
        grid, order = torch.sort(torch.cat([grid, extra]))
        mean_ll = torch.cat([mean_ll, extra_ll])[order]
        best = int(torch.argmax(mean_ll))
    return float(grid[best]), grid, mean_ll


def _bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def check_memory(b: int, s: int, d: int, budget_bytes: int) -> None:
    """Raise :class:`ConfigError` if B·S·D float32 samples (B·S·D·4 bytes) exceed ``budget_bytes``.

    Called before generating anything, so a run with too many Parzen samples fails in a second
    with what would fit rather than after minutes with an out-of-memory error.
    """
    for name, value in (("examples", b), ("samples", s), ("dims", d), ("budget_bytes", budget_bytes)):
        if value < 1:
            raise ConfigError(f"Parzen memory check: {name} must be at least 1, got {value}")
    need = b * s * d * 4
    if need <= budget_bytes:
        return
    fit = budget_bytes // (b * d * 4)
    ex = "example" if b == 1 else "examples"
    what = (f"at most S={fit:,} fit" if fit >= 1
            else f"not even S=1 fits (one sample needs {_bytes(b * d * 4)})")
    raise ConfigError(f"Parzen window: S={s:,} samples of {d:,} dims for {b:,} {ex} need {_bytes(need)}; with "
                      f"this budget ({_bytes(budget_bytes)}) {what}; lower --parzen-samples or evaluate fewer "
                      "examples with --max-examples")
