"""Training-step throughput of a pair's default model at 1 thread against all threads, in one run.

Why: budgets in the issues are wall-clock minutes on a 2-core CPU, while shared machines are often
measured one thread per job. This prints how many times faster a step is with every core than with
one (rounds alternate and flip order so drift hits both), so a CPU-time figure measured at one
thread converts to the wall time a user sees on a quiet machine.

    CMMKIT_DATA=../shared/data python benchmarks/thread_scaling.py [--pair multi30k_en_de] [--model cmma]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cmmkit.config import build_config
from cmmkit.runs import build_model, load_data
from cmmkit.training.rundir import RunDir
from cmmkit.training.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pair", default="multi30k_en_de")
    ap.add_argument("--model", default="cmma")
    ap.add_argument("--steps", type=int, default=6, help="training steps per timed round")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    every = len(os.sched_getaffinity(0))
    torch.manual_seed(0)
    config = build_config(args.pair, model=args.model)
    data = load_data(config, progress=False)
    ds = data.splits["train"]
    if hasattr(ds, "epoch_batches"):
        idx = ds.epoch_batches(config.train.batch_size, torch.Generator().manual_seed(0))
    else:
        perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
        idx = list(perm.split(config.train.batch_size))
    picked = [ds.get_batch(b) for b in idx[:args.steps * args.rounds + 2]]
    _, model = build_model(config, data.info)
    tmp = tempfile.TemporaryDirectory()
    trainer = Trainer(config, model, data, RunDir(Path(tmp.name)), progress=False)
    model.train()
    for b in picked[:2]:
        trainer.train_step(model.prepare(b))
    times: dict[int, list[float]] = {1: [], every: []}
    for r in range(args.rounds):
        chunk = picked[2 + r * args.steps: 2 + (r + 1) * args.steps]
        for threads in ((1, every) if r % 2 == 0 else (every, 1)):
            torch.set_num_threads(threads)
            start = time.perf_counter()
            for b in chunk:
                trainer.train_step(model.prepare(b))
            times[threads].append((time.perf_counter() - start) / len(chunk))
    one, all_ = statistics.median(times[1]), statistics.median(times[every])
    print(f"{args.pair} / {args.model}: {one * 1e3:.0f} ms per step at 1 thread, {all_ * 1e3:.0f} ms at {every} "
          f"threads: {one / all_:.2f}x (rounds: 1 thread {', '.join(f'{t * 1e3:.0f}' for t in times[1])} ms; "
          f"{every} threads {', '.join(f'{t * 1e3:.0f}' for t in times[every])} ms); load average before: "
          f"{os.getloadavg()[0]:.2f}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
