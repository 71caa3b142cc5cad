"""A pair's default training step in float32 against the same step under bf16 autocast.

    CMMKIT_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/autocast_step.py [--pair lfw_faces_attrs]
        [--model cmma] [--steps 10] [--rounds 3]

Both variants are the trainer's own step (``Trainer.train_step`` on prepared real batches, fused
Adam), built from the pair's default preset; the second adds ``train.speed.autocast=bf16``, which
``cmmkit.training.speed`` applies on CUDA and on CPUs with native bf16 (AVX512-BF16 or AMX; on
others it warns and the two variants are the same). Rounds alternate (A B, then B A). Printed, all
measured in this run: ms per step by wall clock and by this process's CPU time, the ratio
float32 / bf16 (> 1: bf16 is faster), and the float32 and bf16 matmul peaks (1024^3, best of 10).
Whether bf16 keeps a model's quality is a separate question, answered by training runs
(docs/training.md, "Speed on one machine").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import Clock, matmul_peak

from cmmkit.config import build_config
from cmmkit.runs import build_model, load_data
from cmmkit.training.rundir import RunDir
from cmmkit.training.speed import autocast_dtype
from cmmkit.training.trainer import Trainer

LFW_SETS = ["pair.attributes_file=lfw_attributes_binarized.txt"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", default="lfw_faces_attrs")
    ap.add_argument("--model", default="cmma")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per round and variant")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sets = LFW_SETS if args.pair == "lfw_faces_attrs" else []
    variants = {"float32": ["train.speed.autocast=off"], "bf16": ["train.speed.autocast=bf16"]}
    configs = {k: build_config(args.pair, model=args.model, sets=[*sets, "train.device=cpu", *v])
               for k, v in variants.items()}
    data = load_data(configs["float32"], progress=False)
    device = torch.device("cpu")
    print(f"pair={args.pair} model={args.model} threads={torch.get_num_threads()} "
          f"batch={configs['float32'].train.batch_size} bf16 autocast here: "
          f"{autocast_dtype(device, configs['bf16'].train.speed) is not None} load average {os.getloadavg()[0]:.1f}")
    trainers, batches = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in configs.items():
            torch.manual_seed(0)
            _, model = build_model(cfg, data.info)
            trainers[name] = Trainer(cfg, model, data, RunDir(Path(tmp) / name), progress=False)
        bs, train = configs["float32"].train.batch_size, data.splits["train"]
        raw = [train.get_batch(torch.arange(i * bs, (i + 1) * bs)) for i in range(args.steps)]
        times: dict[str, list[Clock]] = {k: [] for k in trainers}
        for r in range(-1, args.rounds):  # round -1 warms up (allocator, oneDNN primitives)
            names = list(trainers) if r % 2 == 0 else list(trainers)[::-1]
            for name in names:
                tr = trainers[name]
                batches = [tr._prepare(b) for b in raw]
                with Clock() as clock:
                    for b in batches:
                        tr.train_step(b)
                if r >= 0:
                    times[name].append(clock)
            if r >= 0:
                f, h = times["float32"][-1], times["bf16"][-1]
                print(f"round {r + 1}: float32 {1000 * f.wall / args.steps:.0f} ms/step ({1000 * f.cpu / args.steps:.0f} "
                      f"cpu), bf16 {1000 * h.wall / args.steps:.0f} ms/step ({1000 * h.cpu / args.steps:.0f} cpu), "
                      f"ratio wall {f.wall / h.wall:.2f} cpu {f.cpu / h.cpu:.2f}", flush=True)
    med = statistics.median
    fw, hw = med(c.wall for c in times["float32"]), med(c.wall for c in times["bf16"])
    fc, hc = med(c.cpu for c in times["float32"]), med(c.cpu for c in times["bf16"])
    p32, p16 = matmul_peak(device), matmul_peak(device, torch.bfloat16)
    print(f"median: float32 {1000 * fw / args.steps:.0f} ms/step, bf16 {1000 * hw / args.steps:.0f} ms/step: "
          f"bf16 is {fw / hw:.2f}x as fast by wall clock, {fc / hc:.2f}x by CPU time; matmul peak float32 "
          f"{p32[0] / 1e9:.0f} GFLOP/s, bf16 {p16[0] / 1e9:.0f} GFLOP/s; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
