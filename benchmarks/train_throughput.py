"""Images/s of the cmmkit trainer against a minimal hand-written PyTorch loop.

Both train the same CMMA network (the LFW pair's default preset) with the same optimizer, batch
size and in-memory uint8 data; the hand-written loop computes the CMMA loss inline with
torch.distributions instead of cmmkit's bound module. Runs alternate (A B A B ...) so drift of a
shared machine hits both, and the order flips every round; the ratio of medians is printed (target >= 0.95).

    python benchmarks/train_throughput.py [--images 2560] [--rounds 3] [--device auto] [--real]

``--real`` uses the LFW mirror (``$CMMKIT_DATA`` or ../shared/data) instead of random pixels.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.distributions import Independent, Normal, kl_divergence

from cmmkit.config import build_config
from cmmkit.pair import PairData, TensorPairDataset
from cmmkit.runs import build_model
from cmmkit.training.optim import pick_device
from cmmkit.training.rundir import RunDir
from cmmkit.training.trainer import Trainer


def make_data(n: int, real: bool) -> PairData:
    if real:
        from cmmkit.registry import get_registry

        root = Path(os.environ.get("CMMKIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
        cfg = build_config("lfw_faces_attrs", sets=[f"data.data_dir={root / 'lfw'}",
                                                    "pair.attributes_file=lfw_attributes_binarized.txt"])
        data = get_registry().pair("lfw_faces_attrs").load(cfg.pair, cfg.data.data_dir, progress=False)
        train = data.splits["train"]
        data.splits["train"] = TensorPairDataset(train.x[:n], train.y[:n])
        return data
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g)
    y = torch.where(torch.rand(n, 73, generator=g) > 0.5, 1.0, -1.0)
    info = {"x": {"channels": 3, "height": 64, "width": 64},
            "y": {"names": [f"a{i}" for i in range(73)], "mean": y.mean(0).tolist()}}
    return PairData({"train": TensorPairDataset(x, y), "val": TensorPairDataset(x[:64], y[:64])}, info)


def cmmkit_loop(data: PairData, config, device) -> float:
    torch.manual_seed(0)
    _, model = build_model(config, data.info)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, model, data, RunDir(Path(tmp)), progress=False)
        _sync(device)
        start = time.perf_counter()
        trainer._train_epoch()
        _sync(device)
        return len(data.splits["train"]) / (time.perf_counter() - start)


def hand_loop(data: PairData, config, device) -> float:
    """What a user would write by hand: index, dequantize, encode, sample, decode, step."""
    torch.manual_seed(0)
    _, model = build_model(config, data.info)
    model.to(device).train()
    oc = config.train.optimizer
    opt = getattr(torch.optim, oc.name)(model.parameters(), lr=oc.lr, **oc.kwargs)
    xs, ys = data.splits["train"].x, data.splits["train"].y
    bs, n = config.train.batch_size, len(xs)
    order = torch.randperm(n)
    _sync(device)
    start = time.perf_counter()
    for i in range(0, n, bs):
        idx = order[i:i + bs]
        x = ((xs[idx].to(device).float() + torch.rand(len(idx), 3, 64, 64, device=device)) / 256.0)
        y = ys[idx].to(device)
        h = torch.cat([model.x_encoder(x), model.y_encoder(y)], -1)
        q = Independent(Normal(model.posterior_head.mu(h), torch.exp(0.5 * model.posterior_head.logvar(h))), 1)
        pf = model.prior_net(y)
        p = Independent(Normal(pf.mu, torch.exp(0.5 * pf.logvar)), 1)
        z = q.rsample()
        px = model.decoder(z)
        rec = Independent(Normal(px.mu, torch.exp(0.5 * px.logvar)), 3).log_prob(x)
        zp = p.rsample()
        py = model.y_decoder(zp)
        log_q_y = Independent(Normal(py.mu, torch.exp(0.5 * py.logvar)), 1).log_prob(y)
        loss = -(rec - kl_divergence(q, p) + log_q_y).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return n / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2560, help="training images per timed epoch")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (median reported)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--real", action="store_true", help="use the real LFW mirror")
    args = ap.parse_args()
    config = build_config("lfw_faces_attrs", preset=args.preset, sets=[f"train.device={args.device}"])
    device = pick_device(args.device)
    data = make_data(args.images, args.real)
    print(f"device={device} threads={torch.get_num_threads()} batch={config.train.batch_size} "
          f"images/epoch={args.images} preset={args.preset} data={'LFW mirror' if args.real else 'random uint8'}")
    hand_loop(data, config, device)  # warm-up (allocator, kernels)
    ours, ref = [], []
    for r in range(args.rounds):
        if r % 2 == 0:  # A B, then B A: neither loop always runs first
            ours.append(cmmkit_loop(data, config, device))
            ref.append(hand_loop(data, config, device))
        else:
            ref.append(hand_loop(data, config, device))
            ours.append(cmmkit_loop(data, config, device))
        print(f"round {r + 1}: cmmkit {ours[-1]:8.1f} img/s   hand-written {ref[-1]:8.1f} img/s   "
              f"ratio {ours[-1] / ref[-1]:.3f}")
    a, b = statistics.median(ours), statistics.median(ref)
    print(f"median: cmmkit {a:.1f} img/s, hand-written {b:.1f} img/s, ratio {a / b:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
