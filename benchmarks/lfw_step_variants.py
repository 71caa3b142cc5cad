"""CPU milliseconds per face of a training step of LFW default-preset CMMA variants, alternating rounds.

    CMMKIT_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/lfw_step_variants.py 1280 [VARIANT ...]

Each round trains one epoch of the first N real training faces with the trainer per variant and
reports process CPU time per face (robust to other jobs on a shared machine), wall faces/s,
steps/s and the matmul peak measured right after. The median over 2 rounds is printed last.
"""
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peak import matmul_peak
from train_throughput import make_data

from cmmkit.config import build_config
from cmmkit.runs import build_model
from cmmkit.training.rundir import RunDir
from cmmkit.training.trainer import Trainer

VARIANTS = {
 "base": ["model.y_surrogate_weight=1"],  # the default before issue 16
 "ysur0": ["model.y_surrogate_weight=0"],  # the default now
 "ysur0-share": ["model.y_surrogate_weight=0", "model.share_y_encoder=true"],
 "ysur0-b128": ["model.y_surrogate_weight=0", "train.batch_size=128"],
 "ysur0-fixvar": ["model.y_surrogate_weight=0", "pair.x.learn_variance=false"],
}
names = sys.argv[2:] or list(VARIANTS)
n = int(sys.argv[1])
data = make_data(n, True)
peak = matmul_peak
res = {k: [] for k in names}
for r in range(2):
    for name in (names if r % 2 == 0 else names[::-1]):
        cfg = build_config("lfw_faces_attrs", sets=["pair.attributes_file=lfw_attributes_binarized.txt", "train.device=cpu"] + VARIANTS[name])
        torch.manual_seed(0)
        _, model = build_model(cfg, data.info)
        with tempfile.TemporaryDirectory() as tmp:
            tr = Trainer(cfg, model, data, RunDir(Path(tmp)), progress=False)
            c0, w0 = time.process_time(), time.perf_counter()
            tr._train_epoch()
            c, w = time.process_time() - c0, time.perf_counter() - w0
        steps = -(-n // cfg.train.batch_size)
        res[name].append((c / n * 1e3, n / w))
        print(f"{name:14s} cpu {c/n*1e3:.2f} ms/face  {n/c:.0f} faces/cpu-s  wall {n/w:.0f} faces/s  {steps/w:.2f} steps/s  peak {peak():.0f} GFLOP/s", flush=True)
for k, v in res.items():
    print(k, "median cpu ms/face", statistics.median(x[0] for x in v))
