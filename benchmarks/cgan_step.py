"""Time per training step of the LFW default CGAN: the model-owned step of issue 15 (the batch
prepared once, one set of fakes shared by D's and G's updates) against the step's old shape
(each optimizer prepared the batch and built its own fakes), on the same batches. Rounds alternate
and flip order so a shared machine's drift hits both; medians are printed.

    CMMKIT_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/cgan_step.py [--steps 10] [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cmmkit.config import build_config
from cmmkit.models.cgan import CGAN
from cmmkit.runs import build_model, load_data
from cmmkit.training.distributed import Dist
from cmmkit.training.optim import make_optimizers
from cmmkit.training.step import StepOptimizers


def old_shape(model: CGAN, raw: dict, optimizers: StepOptimizers) -> None:
    """The per-optimizer contract's step: prepare and fakes once per optimizer."""
    p = model.prepare(raw)
    with torch.no_grad():
        fake = model._fake(p["y"])
    d_loss, _ = model.discriminator_loss(p["x"], p["y"], fake)
    optimizers["discriminator"].minimize(d_loss)
    p = model.prepare(raw)
    optimizers["generator"].minimize(model.generator_loss(model._fake(p["y"]), p["y"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = build_config("lfw_faces_attrs", model="cgan", sets=["pair.attributes_file=lfw_attributes_binarized.txt"])
    data = load_data(config, progress=False)
    _, model = build_model(config, data.info)
    optimizers = StepOptimizers(make_optimizers(model, config.train), Dist())
    bs, ds = config.train.batch_size, data.splits["train"]
    batches = [ds.get_batch(torch.arange(k * bs, (k + 1) * bs)) for k in range(args.steps)]
    steps = {"model-owned": lambda raw: model.train_step(model.prepare(raw), optimizers),
             "old shape": lambda raw: old_shape(model, raw, optimizers)}
    model.train()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.rounds):
        for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            start = time.perf_counter()
            for raw in batches:
                steps[name](raw)
            times[name].append((time.perf_counter() - start) / args.steps)
    median = {name: statistics.median(v) for name, v in times.items()}
    print(f"batch {bs}, {torch.get_num_threads()} thread(s); ms/step per round: "
          + "; ".join(f"{k} {[round(v * 1000) for v in vs]}" for k, vs in times.items()))
    print(f"median ms/step: model-owned {median['model-owned'] * 1000:.0f}, old shape {median['old shape'] * 1000:.0f} "
          f"(ratio {median['old shape'] / median['model-owned']:.2f})")


if __name__ == "__main__":
    main()
