"""``cmmkit evaluate``: the paper's Table 2 measures for one trained run, written to eval.json.

- the variational lower bound on a split (eq. 6 for CMMA, eq. 13 for CVAE), nats per example and
  bits per dimension, on dequantized data;
- log p(x | y) by importance sampling with K samples from q (tighter and more trustworthy);
- the Parzen-window estimate of §4.4: S samples from p(x | y) per example, σ chosen on validation;
- the measures the run's pair declares (:meth:`cmmkit.pair.Pair.evaluations`, e.g. how well a
  judge recognises y in the generated x), each under its own key: null when it does not apply (e.g. no ``--judge``).

Nothing in the run folder is changed except ``eval.json`` (written atomically).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import Field as PydField
from tqdm.auto import tqdm

from cmmkit import __version__, bound
from cmmkit.config import Options
from cmmkit.data.download import atomic_write
from cmmkit.errors import ConfigError
from cmmkit.evaluation import EVAL_FILE
from cmmkit.evaluation.parzen import PARZEN_NOTE, check_memory, parzen_log_likelihood
from cmmkit.logs import no_bar
from cmmkit.modality import repeat, select, to_device
from cmmkit.models.latent import LatentModel
from cmmkit.runs import TrainedRun, load_data, load_run
from cmmkit.training import heap

__all__ = ["EVAL_FILE", "EvalContext", "EvalOptions", "evaluate_run", "write_json"]


@dataclass
class EvalContext:
    """What a pair-specific measure (:meth:`cmmkit.pair.Pair.evaluations`) is given."""

    run: TrainedRun
    dataset: Any  # the evaluated split (a PairDataset)
    n: int  # evaluate its first n examples
    opts: EvalOptions
    progress: bool
    splits: dict[str, Any] = field(default_factory=dict)  # every split, e.g. to fit on train

    def batches(self, size: int | None = None) -> list[torch.Tensor]:
        return _batches(self.n, size or self.opts.batch_size)

    def bar(self, desc: str, total: int | None = None) -> Any:
        return _bar(self.n if total is None else total, desc, self.progress)


class EvalOptions(Options):
    """``cmmkit evaluate``'s options (validated: a bad value is a ConfigError naming its flag)."""

    split: str = "test"
    k: int = PydField(1000, ge=1, description="importance samples per example")
    # The defaults keep `cmmkit evaluate` in minutes on a CPU: importance sampling costs K decoder
    # passes per example and Parzen S per example and seed (benchmarks/eval_throughput.py projects
    # the time from the decoder's measured throughput). None means every example of the split.
    is_examples: int | None = PydField(100, ge=1, description="importance-sample the first N examples only (None: all)")
    parzen_examples: int | None = PydField(500, ge=1, description="Parzen on the first N examples only (None: all)")
    parzen_samples: int = PydField(100, ge=1, description="S, samples from p(x|y) per example")
    parzen: bool = True
    parzen_val_examples: int = PydField(200, ge=1, description="validation examples used to choose σ")
    sigma_grid: list[float] = PydField(default_factory=lambda: torch.logspace(-3, 0, 31).tolist(), min_length=1)
    judge: Path | None = None
    seeds: list[int] = PydField(default_factory=lambda: [0], min_length=1)
    max_examples: int | None = PydField(None, ge=1, description="cap on the split's examples for every measure")
    batch_size: int = PydField(64, ge=1)
    memory_budget: int = PydField(1 << 30, ge=1, description="bytes of Parzen samples held at once")
    data_dir: Path | None = None
    device: str = "auto"
    only: list[str] | None = PydField(None, min_length=1, description="compute only these measures (None: all)")
    decode: list[str] | None = PydField(None, description="decoding-only options for this evaluation, e.g. "
                                        "['x.length_penalty=1.0'] (see ModalityOptions.decode_fields)")


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _batches(n: int, size: int) -> list[torch.Tensor]:
    return [torch.arange(i, min(i + size, n)) for i in range(0, n, size)]


def _bar(total: int, desc: str, progress: bool) -> Any:
    return tqdm(total=total, desc=desc, unit="ex", disable=no_bar(progress), leave=False, dynamic_ncols=True)


def _seeded(seed: int, fn: Callable[[], Any]) -> Any:
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []):
        torch.manual_seed(seed)
        return fn()


def evaluate_run(run_dir: str | Path, opts: EvalOptions | None = None, *, progress: bool = True) -> dict[str, Any]:
    """Compute the measures for ``run_dir`` on ``opts.split``, write ``eval.json``, return it."""
    opts = opts or EvalOptions()
    run = load_run(run_dir, device=opts.device, decode=opts.decode)  # load_run resolves 'auto'
    if not run.model.can_generate:
        raise ConfigError(f"{run_dir}: a {run.model.name} run does not model p(x | y); evaluate a generative run")
    config = run.config
    # the run's allocator setting (process-wide: a notebook calling this gets it too): importance
    # sampling allocates and frees the same decoder outputs call after call (measured with glibc's
    # own environment variables for the same thresholds: 10% less wall time, 120 MiB more peak memory)
    heap.apply(run.device, config.train.speed.reuse_freed_memory)
    data = load_data(config, data_dir=opts.data_dir, progress=progress)
    if opts.split not in data.splits:
        raise ConfigError(f"--split {opts.split!r}: no such split; {config.pair.name} has "
                          f"{', '.join(data.splits)}")
    dataset = data.splits[opts.split]
    n = min(len(dataset), opts.max_examples or len(dataset))
    out: dict[str, Any] = {"cmmkit_version": __version__, "run": str(run.path), "model": run.model.name,
                           "pair": config.pair.name, "split": opts.split, "epoch": run.meta.get("epoch"),
                           "examples": n, "seeds": list(opts.seeds), "decode": list(opts.decode or []), "bound": None, "importance_sampling": None,
                           "parzen": None, "pair_metrics": [], "seconds": {}}
    measures = run.pair.evaluations()
    out.update({name: None for name in measures if name not in out})  # declared: present, null until computed
    wanted = _wanted(opts.only, [m for m in ("bound", "importance_sampling", "parzen") if m in run.pair.metrics]
                     + list(measures), config.pair.name)
    x_mod = run.model.x
    bpd = lambda nats: bound.bits_per_dim(nats, x_mod.dims, x_mod.discrete_log_offset())

    if "bound" in wanted and _reports_bound(run, dataset):
        start = time.perf_counter()
        values = [_seeded(s, lambda: _mean_bound(run, dataset, n, opts.batch_size)) for s in opts.seeds]
        mean, std = _mean_std(values)
        out["bound"] = {"nats": mean, "nats_std": std, "bits_per_dim": bpd(mean)}
        out["seconds"]["bound"] = time.perf_counter() - start

    if isinstance(run.model, LatentModel) and "importance_sampling" in wanted:
        start = time.perf_counter()
        m = min(n, opts.is_examples or n)
        values = [_seeded(s, lambda: _mean_is(run, dataset, m, opts, progress)) for s in opts.seeds]
        mean, std = _mean_std(values)
        out["importance_sampling"] = {"k": opts.k, "examples": m, "nats": mean, "nats_std": std,
                                      "bits_per_dim": bpd(mean)}
        out["seconds"]["importance_sampling"] = time.perf_counter() - start

    if opts.parzen and "parzen" in wanted:
        start = time.perf_counter()
        out["parzen"] = _parzen(run, data.splits["val"], dataset, min(n, opts.parzen_examples or n), opts, progress)
        out["seconds"]["parzen"] = time.perf_counter() - start

    ctx = EvalContext(run, dataset, n, opts, progress, dict(data.splits))
    for name, measure in measures.items():
        if name not in wanted:
            continue
        start = time.perf_counter()
        result = _seeded(opts.seeds[0], lambda m=measure: m(ctx))  # type: ignore[arg-type, return-value]
        if result is not None:
            out[name] = result
            out["pair_metrics"].append(name)
            out["seconds"][name] = time.perf_counter() - start

    write_json(run.path / EVAL_FILE, out)
    return out


def _wanted(only: list[str] | None, available: list[str], pair: str) -> set[str]:
    """The measures to compute: all of the pair's, or those ``--only`` names (each must exist)."""
    if only is None:
        return set(available)
    unknown = [m for m in only if m not in available]
    if unknown:
        raise ConfigError(f"--only {' '.join(unknown)}: no such measure for {pair}; it has {', '.join(available)}")
    return set(only)


@torch.no_grad()
def _reports_bound(run: TrainedRun, dataset: Any) -> bool:
    """Whether the model's ``evaluate`` gives a ``bound`` (a variational bound, or the exact
    log-likelihood of a deterministic model); a GAN's does not."""
    raw = to_device(dataset.get_batch(torch.arange(1)), run.device) if len(dataset) else None
    return raw is not None and "bound" in run.model.evaluate(run.model.prepare(raw))


@torch.no_grad()
def _mean_bound(run: TrainedRun, dataset: Any, n: int, bs: int) -> float:
    total = 0.0
    for idx in _batches(n, bs):
        total += float(run.model.evaluate(run.model.prepare(to_device(dataset.get_batch(idx), run.device)))["bound"].sum())
    return total / n


@torch.no_grad()
def _mean_is(run: TrainedRun, dataset: Any, m: int, opts: EvalOptions, progress: bool) -> float:
    total, bs = 0.0, 8
    chunk = max(1, min(opts.k, 256 // bs))
    with _bar(m, f"importance sampling (K={opts.k})", progress) as bar:
        for idx in _batches(m, bs):
            batch = run.model.prepare(to_device(dataset.get_batch(idx), run.device))
            total += float(bound.importance_log_likelihood(run.model, batch, opts.k, chunk=chunk).sum())
            bar.update(len(idx))
    return total / m


@torch.no_grad()
def _parzen_batches(run: TrainedRun, dataset: Any, n: int, opts: EvalOptions, sigmas: torch.Tensor,
                    desc: str, progress: bool) -> torch.Tensor:
    """Parzen log-likelihoods (G, n) of the first n examples for each σ in ``sigmas``."""
    s, d = opts.parzen_samples, run.model.x.dims
    check_memory(1, s, d, opts.memory_budget)
    per = max(1, min(opts.batch_size, opts.memory_budget // (s * d * 4)))
    outs = []
    with _bar(n, desc, progress) as bar:
        for idx in _batches(n, per):
            raw = to_device(dataset.get_batch(idx), run.device)
            x = run.model.x.prepare(raw["x"]).reshape(len(idx), -1)
            y = repeat(run.model.y.prepare(raw["y"], dequantize=False), s)
            total = len(idx) * s
            samples = torch.cat([run.model.generate(select(y, slice(i, i + 256)), noise_scale=1.0)
                                 for i in range(0, total, 256)])
            samples = samples.reshape(len(idx), s, -1)
            outs.append(parzen_log_likelihood(x, samples, sigmas).reshape(len(sigmas), -1))
            bar.update(len(idx))
    return torch.cat(outs, dim=1)


def _parzen(run: TrainedRun, val: Any, dataset: Any, n: int, opts: EvalOptions, progress: bool) -> dict[str, Any]:
    grid = torch.tensor(opts.sigma_grid, dtype=torch.float64)
    n_val = min(len(val), opts.parzen_val_examples)
    val_ll = _seeded(opts.seeds[0], lambda: _parzen_batches(run, val, n_val, opts, grid, "Parzen σ on validation",
                                                            progress)).mean(1)  # type: ignore[arg-type, return-value]
    best = int(torch.argmax(val_ll))
    sigma = torch.tensor([float(grid[best])], dtype=torch.float64)
    values = [_seeded(s, lambda: float(_parzen_batches(run, dataset, n, opts, sigma, "Parzen on " + opts.split,
                                                       progress).mean())) for s in opts.seeds]
    mean, std = _mean_std(values)
    return {"samples": opts.parzen_samples, "sigma": float(sigma), "nats": mean, "nats_std": std, "examples": n,
            "validation_examples": n_val, "sigma_grid": grid.tolist(), "validation_nats": val_ll.tolist(),
            "sigma_at_grid_edge": best in (0, len(grid) - 1), "note": PARZEN_NOTE}


def _finite(value: Any) -> Any:
    """NaN (e.g. the AUC of an attribute absent from the split) becomes null: valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    """``data`` as indented JSON, written atomically (non-finite numbers become null)."""
    with atomic_write(path, "w") as f:
        json.dump(_finite(data), f, indent=2, allow_nan=False)
