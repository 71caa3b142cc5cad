"""The machine's matmul peak, measured beside every timing (shared by the benchmarks in this folder)."""

from __future__ import annotations

import time

import torch


def matmul_peak(n: int = 1024, reps: int = 20) -> float:
    """GFLOP/s of a float32 n x n matmul, best of ``reps`` (this machine, these threads)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9
