"""A pair's default training step with ``train.speed.reuse_freed_memory`` on against off.

    CMMKIT_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/heap_step.py [--pair fsdd_digits_speech] [--model cmma]
        [--set KEY=VALUE ...] [--steps 20] [--pairs 3]

The setting changes glibc's malloc for the whole process and cannot be undone in it, so every
measurement is its own process: alternating pairs of processes (on then off, then the other way
round), each building the trainer, taking 3 warm-up steps on real batches, then timing
``--steps`` steps (``Trainer.train_step`` on batches prepared beforehand). Printed per pair: CPU
ms per step, minor page faults per step and peak RSS of each process, and the ratio off / on of
CPU time per step (> 1: the setting is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _processes import alternating

from cmmkit.config import build_config
from cmmkit.runs import build_model, load_data
from cmmkit.training.rundir import RunDir
from cmmkit.training.trainer import Trainer


def child(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    config = build_config(args.pair, model=args.model, sets=["train.device=cpu", *args.set,
                                                             f"train.speed.reuse_freed_memory={args.child}"])
    data = load_data(config, progress=False)
    ds = data.splits["train"]
    if hasattr(ds, "epoch_batches"):
        idx = ds.epoch_batches(config.train.batch_size, torch.Generator().manual_seed(0))
    else:
        idx = list(torch.randperm(len(ds), generator=torch.Generator().manual_seed(0)).split(config.train.batch_size))
    _, model = build_model(config, data.info)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, model, data, RunDir(Path(tmp)), progress=False)  # applies the setting
        model.train()
        batches = [trainer._prepare(ds.get_batch(b)) for b in idx[:args.steps + 3]]
        for b in batches[:3]:
            trainer.train_step(b)
        f0, c0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
        for b in batches[3:]:
            trainer.train_step(b)
        timed = len(batches) - 3  # fewer than --steps when the epoch is shorter
        cpu = (time.process_time() - c0) / timed
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / timed
    print(json.dumps({"cpu_ms": cpu * 1e3, "faults": faults,
                      "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pair", default="fsdd_digits_speech")
    ap.add_argument("--model", default="cmma")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per process")
    ap.add_argument("--pairs", type=int, default=3, help="alternating pairs of processes")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config changes for both, e.g. pair.attributes_file=lfw_attributes_binarized.txt")
    ap.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.pairs < 1 or args.steps < 1:
        ap.error("--pairs and --steps must be at least 1")
    if args.child:
        return child(args)
    print(f"{args.pair} / {args.model}: {args.steps} steps per process, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    base = [sys.executable, __file__, "--pair", args.pair, "--model", args.model, "--steps", str(args.steps),
            *(a for kv in args.set for a in ("--set", kv))]
    got: dict[str, list[dict]] = {"on": [], "off": []}
    for p, pair in enumerate(alternating(base, "--child", ("on", "off"), args.pairs)):
        for setting, result in pair.items():
            got[setting].append(result)
        on, off = got["on"][-1], got["off"][-1]
        print(f"pair {p + 1}: on {on['cpu_ms']:.1f} ms CPU/step, {on['faults']:.0f} faults/step, peak RSS "
              f"{on['rss']:.0f} MiB | off {off['cpu_ms']:.1f} ms, {off['faults']:.0f} faults/step, {off['rss']:.0f} MiB "
              f"| off/on {off['cpu_ms'] / on['cpu_ms']:.3f}", flush=True)
    ratios = [f["cpu_ms"] / o["cpu_ms"] for o, f in zip(got["on"], got["off"])]
    print(f"off / on (CPU time per step): {' '.join(f'{r:.3f}' for r in ratios)}; median "
          f"{statistics.median(ratios):.3f}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
