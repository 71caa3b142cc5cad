"""Evaluation throughput: cmmkit's importance sampling and Parzen window against straightforward code.

Both sides evaluate the same network (the LFW pair's default CMMA, or a trained run with ``--run``)
on the same examples, measured in the same run, rounds alternating (A B, then B A) so drift of a
shared machine hits both; the ratio of medians is printed (higher is better for cmmkit).

- **Importance sampling** (``log p(x|y)``, K samples from q): cmmkit's evaluator
  (:func:`cmmkit.evaluation.evaluate._mean_is`: 8 examples x 64 samples per decoder call,
  :func:`cmmkit.bound.importance_log_likelihood`) against what an IWAE-style script does: one
  example at a time, its K samples in chunks of 100, the decoder's layers called in PyTorch's default
  layout, ``torch.distributions`` for the three densities. Both under ``torch.no_grad``; the two
  estimates are printed and must agree to within their Monte Carlo error.
- **Parzen window** (§4.4; S samples per example, a grid of G values of sigma): cmmkit's
  :func:`cmmkit.evaluation.parzen.parzen_log_likelihood` (float64 distances computed once, every
  sigma reuses them) against the classic loop (Goodfellow et al.'s ``parzen_ll``: per sigma, the
  float32 distances again). Equal results (to float32 precision) are checked.

It also prints the decoder's throughput with and without autograd and the matmul peak measured in
the same run, and the number of decoder calls the default ``cmmkit evaluate`` makes, so the end-to-end
time can be projected for any run.

    OMP_NUM_THREADS=1 python benchmarks/eval_throughput.py [--examples 16] [--k 256] [--rounds 3] [--run RUN]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch
from _peak import (
    matmul_peak,  # benchmarks/_peak.py (the script's folder is on sys.path)
)
from torch.distributions import Independent, Normal

from cmmkit.config import build_config
from cmmkit.evaluation.evaluate import EvalOptions, _mean_is
from cmmkit.evaluation.parzen import parzen_log_likelihood
from cmmkit.pair import PairData, TensorPairDataset
from cmmkit.runs import build_model


def random_lfw(n: int) -> PairData:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g)
    y = torch.where(torch.rand(n, 73, generator=g) > 0.5, 1.0, -1.0)
    info = {"x": {"channels": 3, "height": 64, "width": 64},
            "y": {"names": [f"a{i}" for i in range(73)], "mean": y.mean(0).tolist()}}
    return PairData({"test": TensorPairDataset(x, y)}, info)


def load(run: str | None, n: int) -> tuple[Any, Any]:
    """(model, test dataset): a trained run on its real test split, or the untrained default on random pixels."""
    if run:
        from cmmkit.runs import load_data, load_run

        r = load_run(run, device="cpu")
        return r.model, load_data(r.config, progress=False).splits["test"]
    config = build_config("lfw_faces_attrs")
    data = random_lfw(n)
    torch.manual_seed(0)
    _, model = build_model(config, data.info)
    return model.eval(), data.splits["test"]


def plain_decode(decoder: Any, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The image decoder's layers as a user calls them: default layout, no cmmkit distribution."""
    out = decoder.deconv(decoder.fc(z).view(-1, decoder.c0, decoder.start, decoder.start))
    mu = torch.sigmoid(out[:, :3])
    floor = decoder.opts.logvar_floor
    return mu, floor + torch.nn.functional.softplus(out[:, 3:] - floor)


@torch.no_grad()
def straightforward_is(model: Any, dataset: Any, m: int, k: int, chunk: int = 100) -> float:
    total = 0.0
    for i in range(m):
        raw = dataset.get_batch(torch.tensor([i]))
        b = model.prepare(raw)
        q, p = model.posterior_and_prior(b["x"], b["y"])
        qd = Independent(Normal(q.mu[0], torch.exp(0.5 * q.logvar[0])), 1)
        pd = Independent(Normal(p.mu[0], torch.exp(0.5 * p.logvar[0])), 1)
        logw = []
        for s in range(0, k, chunk):
            z = qd.sample((min(chunk, k - s),))
            mu, logvar = plain_decode(model.decoder, z)
            lik = Independent(Normal(mu, torch.exp(0.5 * logvar)), 3).log_prob(b["x"].expand_as(mu))
            logw.append(lik + pd.log_prob(z) - qd.log_prob(z))
        total += float(torch.logsumexp(torch.cat(logw), 0) - math.log(k))
    return total / m


def classic_parzen(x: torch.Tensor, samples: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Per sigma, float32 distances recomputed (the classic parzen_ll loop)."""
    rows = []
    d = x.shape[1]
    for sig in sigmas.tolist():
        a = (x[:, None, :] - samples) / sig
        e = -0.5 * (a * a).sum(-1)
        rows.append(torch.logsumexp(e, 1) - math.log(samples.shape[1]) - d * math.log(sig * math.sqrt(2 * math.pi)))
    return torch.stack(rows)


def alternate(rounds: int, ours: Callable[[], Any], ref: Callable[[], Any]) -> tuple[list[float], list[float], Any, Any]:
    t_ours, t_ref, v_ours, v_ref = [], [], None, None
    for r in range(rounds):
        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
            t = time.perf_counter()
            v = (ours, ref)[side]()
            (t_ours, t_ref)[side].append(time.perf_counter() - t)
            v_ours, v_ref = (v, v_ref) if side == 0 else (v_ours, v)
    return t_ours, t_ref, v_ours, v_ref


def decoder_rate(model: Any, grad: bool, batch: int = 256, repeats: int = 3) -> float:
    z = torch.randn(batch, model.decoder.fc[0].in_features)
    with torch.set_grad_enabled(grad):
        model.decoder(z)
        t = time.perf_counter()
        for _ in range(repeats):
            model.decoder(z)
    return batch * repeats / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=16, help="examples importance-sampled per round")
    ap.add_argument("--k", type=int, default=256, help="importance samples per example")
    ap.add_argument("--parzen-examples", type=int, default=64)
    ap.add_argument("--parzen-samples", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--run", default=None, help="a trained LFW run folder (default: untrained network, random pixels)")
    args = ap.parse_args()
    model, dataset = load(args.run, max(args.examples, args.parzen_examples))
    peak = matmul_peak()
    print(f"threads {torch.get_num_threads()}, matmul peak {peak:.0f} GFLOP/s, "
          f"{'run ' + args.run if args.run else 'untrained LFW default CMMA, random pixels'}")

    rate_eval, rate_grad = decoder_rate(model, False), decoder_rate(model, True)
    print(f"decoder: {rate_eval:.0f} images/s without autograd (channels_last), {rate_grad:.0f} with autograd "
          f"(default layout); ratio {rate_eval / rate_grad:.2f}")

    opts = EvalOptions(k=args.k)
    run = SimpleNamespace(model=model, device=torch.device("cpu"))
    m = args.examples

    def ours_is() -> float:
        torch.manual_seed(0)
        return _mean_is(run, dataset, m, opts, False)  # type: ignore[arg-type]

    def ref_is() -> float:
        torch.manual_seed(0)
        return straightforward_is(model, dataset, m, args.k)

    to, tr, vo, vr = alternate(args.rounds, ours_is, ref_is)
    a, b = statistics.median(to), statistics.median(tr)
    print(f"importance sampling, {m} examples x K={args.k}: cmmkit {m * args.k / a:.0f} samples/s, straightforward "
          f"{m * args.k / b:.0f} samples/s, ratio {b / a:.2f} (rounds {', '.join(f'{x:.1f}' for x in to)} s vs "
          f"{', '.join(f'{x:.1f}' for x in tr)} s); estimates {vo:.1f} vs {vr:.1f} nats")

    g = torch.Generator().manual_seed(1)
    n, s = args.parzen_examples, args.parzen_samples
    x = torch.rand(n, 3 * 64 * 64, generator=g)
    samples = (x[:, None, :] + 0.1 * torch.randn(n, s, x.shape[1], generator=g)).clamp(0, 1)
    grid = torch.logspace(-3, 0, 31, dtype=torch.float64)
    to, tr, vo, vr = alternate(args.rounds, lambda: parzen_log_likelihood(x, samples, grid),
                               lambda: classic_parzen(x, samples, grid.float()))
    a, b = statistics.median(to), statistics.median(tr)
    best = int(torch.argmax(vo.mean(1)))
    agree = float((vo[best].float() - vr[best]).abs().max())
    print(f"Parzen, {n} examples x S={s} x {len(grid)} sigmas: cmmkit {a:.2f} s, classic loop {b:.2f} s, ratio "
          f"{b / a:.2f}; at the best sigma ({float(grid[best]):.3g}) max difference {agree:.3g} nats "
          f"(classic float32 loses precision at small sigma)")

    d = EvalOptions()
    for seeds in (1, 3):
        calls = seeds * (d.k * (d.is_examples or 0) + d.parzen_samples * (d.parzen_examples or 0)) \
            + d.parzen_samples * d.parzen_val_examples
        print(f"default `cmmkit evaluate` with {seeds} seed(s): {calls:,} decoder passes (IS K={d.k} on "
              f"{d.is_examples} examples and Parzen S={d.parzen_samples} on {d.parzen_examples} per seed, "
              f"{d.parzen_val_examples} validation examples once): {calls / rate_eval / 60:.1f} min at "
              f"{rate_eval:.0f} decodes/s")

if __name__ == "__main__":
    main()
