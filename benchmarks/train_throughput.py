"""The cmmkit trainer against a minimal hand-written PyTorch loop, and the step against the CPU's peak.

    OMP_NUM_THREADS=1 python benchmarks/train_throughput.py [--real] [--images 1280] [--rounds 3] [--pairs 4]

Both loops train the same CMMA network (the LFW pair's default preset) with the same optimizer
class and learning rate, batch size and in-memory uint8 data: the trainer with cmmkit's defaults
(``train.speed``: fused Adam, glibc's heap kept for the next step, ...), the hand-written loop as a
user would write it (index, dequantize, encode, sample, decode, the loss inline with
torch.distributions, plain ``torch.optim.Adam``).

By default each loop runs alone in its own process (a warm-up epoch, then ``--rounds`` timed
epochs), in alternating pairs of processes (trainer then hand-written, then the other way round),
because the trainer's allocator setting (``train.speed.reuse_freed_memory``) is process-wide: in a
shared process it would speed up the hand-written loop as well. Printed, all measured in this run:

- images/s per CPU-second of this process (robust to other jobs on a shared machine) and by wall
  clock, per pair, and the ratio trainer / hand-written per pair and its median (target >= 1.0);
- minor page faults per step of each loop (what the allocator setting removes);
- the training step's FLOPs (``torch.utils.flop_counter.FlopCounterMode``: convolutions and
  matmuls, forward and backward) and its achieved FLOP/s as a fraction of the matmul peak (a
  1024^3 sgemm, best of 10) measured in the trainer's process;
- peak resident memory of each process, and with ``--real`` whether the training faces are the
  memory-mapped LFW cache (not a copy);
- the paper preset's FLOPs per image and a projection of its 500 epochs on an H100-class GPU.

``--in-process`` runs both loops in one process, alternating rounds (A B, then B A): it compares
the loops' code with the allocator equal. ``--hand-heap`` gives the hand-written process the
trainer's allocator setting, to show what the setting alone is worth.

``--real`` uses the LFW mirror (``$CMMKIT_DATA`` or ../shared/data) instead of random pixels.
``--set KEY=VALUE`` (repeatable) changes the trainer's config only, e.g. ``--set
train.speed.autocast=auto`` to time the trainer in bf16; the hand-written loop stays a float32
eager loop. With ``--in-process`` and an autocasting trainer the bf16 matmul peak is printed too.
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
from torch.distributions import Independent, Normal, kl_divergence
from torch.utils.flop_counter import FlopCounterMode

from cmmkit.config import build_config
from cmmkit.pair import PairData, TensorPairDataset
from cmmkit.runs import build_model
from cmmkit.training.optim import pick_device
from cmmkit.training.rundir import RunDir
from cmmkit.training.speed import autocast_dtype
from cmmkit.training.trainer import Trainer

H100 = {"bf16 dense": 989e12, "tf32 dense": 495e12, "fp32": 67e12}  # SXM datasheet peaks, FLOP/s


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


class Clock:
    """Wall and process-CPU seconds of a block (CPU time only counts while this process runs)."""

    def __enter__(self) -> Clock:
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


def cmmkit_loop(data: PairData, config, device) -> Clock:
    torch.manual_seed(0)
    _, model = build_model(config, data.info)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, model, data, RunDir(Path(tmp)), progress=False)
        _sync(device)
        with Clock() as clock:
            trainer._train_epoch()
            _sync(device)
    return clock


def hand_loop(data: PairData, config, device) -> Clock:
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
    with Clock() as clock:
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            x = ((xs[idx].to(device).float() + torch.rand(len(idx), 3, 64, 64, device=device)) / 256.0)
            y = ys[idx].to(device)
            h = torch.cat([model.x_encoder(x), model.y_encoder(y)], -1)
            q = Independent(Normal(model.posterior_head.mu(h), torch.exp(0.5 * model.posterior_head.logvar(h))), 1)
            pf = model.prior_net(y)
            p = Independent(Normal(pf.mu, torch.exp(0.5 * pf.logvar)), 1)
            px = model.decoder(q.rsample())
            rec = Independent(Normal(px.mu, torch.exp(0.5 * px.logvar)), 3).log_prob(x)
            loss = -(rec - kl_divergence(q, p)).mean()
            if model.y_decoder is not None:  # the log p(y) surrogate of §2.1, when the preset has it
                py = model.y_decoder(p.rsample())
                sur = Independent(Normal(py.mu, torch.exp(0.5 * py.logvar)), 1).log_prob(y)
                loss = loss - config.model.y_surrogate_weight * sur.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(device)
    return clock


def step_flops(config, data: PairData, device) -> int:
    """FLOPs of one trainer step (forward, backward; the optimizer's elementwise work is not counted)."""
    torch.manual_seed(0)
    _, model = build_model(config, data.info)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, model, data, RunDir(Path(tmp)), progress=False)
        batch = trainer._prepare(data.splits["train"].get_batch(torch.arange(config.train.batch_size)))
        with FlopCounterMode(display=False) as counter:
            trainer.train_step(batch)
    return counter.get_total_flops()


def matmul_peak(device, dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """(wall, CPU-time) FLOP/s of a 1024^3 matmul in ``dtype`` (float32 by default), best of 10."""
    a = torch.randn(1024, 1024, device=device, dtype=dtype)
    b = torch.randn(1024, 1024, device=device, dtype=dtype)
    a @ b
    best_w = best_c = float("inf")
    for _ in range(10):
        with Clock() as c:
            a @ b
            _sync(device)
        best_w, best_c = min(best_w, c.wall), min(best_c, c.cpu if c.cpu > 0 else float("inf"))
    return 2 * 1024**3 / best_w, 2 * 1024**3 / best_c


def memory() -> dict[str, float]:
    """This process's resident memory (MiB): peak, and now split into anonymous and file-backed pages."""
    out = {"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024
    return out


def mapped_file(t: torch.Tensor) -> str | None:
    """The file whose memory map holds ``t``'s storage (None: anonymous memory, i.e. a copy)."""
    ptr = t.untyped_storage().data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split()
        lo, hi = (int(v, 16) for v in parts[0].split("-"))
        if lo <= ptr < hi:
            return parts[5] if len(parts) > 5 and parts[5].startswith("/") else None
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def child(args: argparse.Namespace, config, device) -> None:
    """One loop alone in this process (``--only``): a warm-up epoch, then ``--rounds`` timed ones;
    the last line is JSON for the parent."""
    if args.only == "hand" and args.hand_heap:
        from cmmkit.training import heap

        heap.apply(device, "on")  # the trainer's allocator setting, given to the hand-written loop too
    data = make_data(args.images, args.real)
    loop = cmmkit_loop if args.only == "trainer" else hand_loop
    loop(data, config, device)  # warm-up, by the same loop
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt  # the faults counted include each epoch's model set-up
    clocks = [loop(data, config, device) for _ in range(args.rounds)]
    steps = args.rounds * -(-args.images // config.train.batch_size)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / steps
    out = {"loop": args.only, "cpu": [args.images / c.cpu for c in clocks],
           "wall": [args.images / c.wall for c in clocks], "faults_per_step": faults,
           "peak_rss_mib": memory()["peak"], "load": os.getloadavg()[0]}
    if args.only == "trainer":  # after the timing: the hand-written process never builds a Trainer
        out["flops"] = step_flops(config, data, device)
        out["peak"] = matmul_peak(device)
        out["mapped"] = mapped_file(data.splits["train"].x) if args.real else None
    print(f"only {args.only}: {' '.join(f'{r:.1f}' for r in out['cpu'])} img/s per CPU-second, median "
          f"{statistics.median(out['cpu']):.1f}; {faults:.0f} minor page faults per step; peak RSS "
          f"{out['peak_rss_mib']:.0f} MiB; load average {out['load']:.1f}", flush=True)
    print(json.dumps(out))


def isolated(args: argparse.Namespace, config, device) -> None:
    """The default: each loop alone in its own process, alternating (T H, then H T, ...), because
    cmmkit's allocator setting (``train.speed.reuse_freed_memory``) is process-wide and would
    otherwise speed up the hand-written loop that shares the trainer's process."""
    base = [sys.executable, __file__, "--images", str(args.images), "--rounds", str(args.rounds),
            "--device", args.device, "--preset", args.preset, *(["--real"] if args.real else []),
            *(["--hand-heap"] if args.hand_heap else []), *(a for kv in args.set for a in ("--set", kv))]
    runs: dict[str, list[dict]] = {"trainer": [], "hand": []}
    for p, got in enumerate(alternating(base, "--only", ("trainer", "hand"), args.pairs)):
        for loop, result in got.items():
            runs[loop].append(result)
        t, h = runs["trainer"][-1], runs["hand"][-1]
        mt, mh = statistics.median(t["cpu"]), statistics.median(h["cpu"])
        print(f"pair {p + 1}: trainer {mt:6.1f} img/cpu-s ({t['faults_per_step']:.0f} faults/step)   hand-written "
              f"{mh:6.1f} ({h['faults_per_step']:.0f} faults/step)   ratio {mt / mh:.3f}   load average "
              f"{max(t['load'], h['load']):.1f}", flush=True)
    med = statistics.median
    ratios = [med(t["cpu"]) / med(h["cpu"]) for t, h in zip(runs["trainer"], runs["hand"])]
    wall = [med(t["wall"]) / med(h["wall"]) for t, h in zip(runs["trainer"], runs["hand"])]
    print(f"trainer / hand-written, per pair of processes (CPU time): {' '.join(f'{r:.3f}' for r in ratios)}; "
          f"median {med(ratios):.3f} (by wall clock {med(wall):.3f}); target >= 1.0")
    t = runs["trainer"][0]
    flops, (pw, pc) = t["flops"], t["peak"]
    bs = config.train.batch_size
    per_s = med(r for tr in runs["trainer"] for r in tr["cpu"]) / bs * flops
    hand_s = med(r for hr in runs["hand"] for r in hr["cpu"]) / bs * flops
    print(f"step: {flops / 1e9:.2f} GFLOP per batch of {bs}; trainer {per_s / 1e9:.1f} GFLOP/s = {per_s / pc:.0%} of "
          f"the matmul peak {pc / 1e9:.0f} GFLOP/s (CPU time; wall peak {pw / 1e9:.0f}); hand-written "
          f"{hand_s / pc:.0%}; target >= 60%")
    print("peak RSS: trainer " + ", ".join(f"{r['peak_rss_mib']:.0f}" for r in runs["trainer"]) + " MiB; hand-written "
          + ", ".join(f"{r['peak_rss_mib']:.0f}" for r in runs["hand"]) + " MiB")
    if args.real:
        where = t["mapped"]
        print(f"LFW training faces: {'memory-mapped from ' + where if where else 'a COPY in anonymous memory'}")
    project_paper(per_s)


def in_process(args: argparse.Namespace, config, device) -> None:
    """``--in-process``: both loops in this process, alternating rounds. The trainer's process-wide
    allocator setting then applies to the hand-written loop too, so this compares the loops' code
    with the allocator equal."""
    low = autocast_dtype(device, config.train.speed)
    data = make_data(args.images, args.real)
    n, bs = args.images, config.train.batch_size
    flops = step_flops(config, data, device)
    print(f"step: {flops / 1e9:.2f} GFLOP per batch of {bs} ({flops / bs / 1e6:.0f} MFLOP per image, "
          "forward + backward)")
    hand_loop(data, config, device)  # warm-up (allocator, oneDNN primitives)
    ours, ref, peaks = [], [], []
    for r in range(args.rounds):
        pair = [("c", cmmkit_loop), ("h", hand_loop)]
        for tag, loop in (pair if r % 2 == 0 else pair[::-1]):  # A B, then B A
            (ours if tag == "c" else ref).append(loop(data, config, device))
        peaks.append(matmul_peak(device))
        c, h = ours[-1], ref[-1]
        print(f"round {r + 1}: cmmkit {n / c.wall:6.1f} img/s ({n / c.cpu:6.1f}/cpu-s)   hand-written "
              f"{n / h.wall:6.1f} img/s ({n / h.cpu:6.1f}/cpu-s)   ratio wall {h.wall / c.wall:.3f} "
              f"cpu {h.cpu / c.cpu:.3f}   matmul peak {peaks[-1][0] / 1e9:.0f} GFLOP/s "
              f"({peaks[-1][1] / 1e9:.0f}/cpu-s)", flush=True)
    med = statistics.median
    cw, hw = med(c.wall for c in ours), med(h.wall for h in ref)
    cc, hc = med(c.cpu for c in ours), med(h.cpu for h in ref)
    per_round = [h.cpu / c.cpu for c, h in zip(ours, ref)]
    print(f"median: cmmkit {n / cw:.1f} img/s, hand-written {n / hw:.1f} img/s, ratio {hw / cw:.3f} "
          f"(by CPU time {hc / cc:.3f}; per-round CPU ratios {min(per_round):.3f}-{max(per_round):.3f}, "
          f"median {med(per_round):.3f}; target >= 1.0); load average {os.getloadavg()[0]:.1f}")
    total = flops * -(-n // bs)
    pw, pc = med(p[0] for p in peaks), med(p[1] for p in peaks)
    print(f"achieved: cmmkit step {total / cw / 1e9:.1f} GFLOP/s = {total / cw / pw:.0%} of the matmul peak "
          f"{pw / 1e9:.0f} GFLOP/s (by CPU time {total / cc / 1e9:.1f} of {pc / 1e9:.0f} = {total / cc / pc:.0%}); "
          f"hand-written {total / hc / pc:.0%} by CPU time; target >= 60%")
    if low is not None:
        lw, lc = matmul_peak(device, low)
        print(f"the trainer autocasts to {low}: its {low} matmul peak {lw / 1e9:.0f} GFLOP/s ({lc / 1e9:.0f}/cpu-s); "
              f"the step reaches {total / cw / lw:.0%} of it ({total / cc / lc:.0%} by CPU time)")
    mem = memory()
    print(f"memory: peak RSS {mem['peak']:.0f} MiB (now anonymous {mem.get('RssAnon', 0):.0f} MiB, "
          f"file-backed {mem.get('RssFile', 0):.0f} MiB)")
    if args.real:
        where = mapped_file(data.splits["train"].x)
        print(f"LFW training faces: {'memory-mapped from ' + where if where else 'a COPY in anonymous memory'}")
    project_paper(total / cc)


def project_paper(flop_per_s: float) -> None:
    """The paper preset's FLOPs per image, and its 500 epochs here and on an H100 (a projection)."""
    paper = build_config("lfw_faces_attrs", preset="paper", sets=["train.device=cpu"])
    pf = step_flops(paper, make_data(paper.train.batch_size, False), torch.device("cpu")) / paper.train.batch_size
    work = pf * paper.pair.train_size * paper.train.epochs
    print(f"paper preset: {pf / 1e9:.2f} GFLOP per image; 500 epochs x {paper.pair.train_size} images = "
          f"{work / 1e15:.1f} PFLOP: on this CPU at {flop_per_s / 1e9:.0f} GFLOP/s {work / flop_per_s / 3600:.1f} h "
          "of one core; on an H100 (no GPU lent to this task: a projection) " + ", ".join(
              f"{work / (0.4 * v) / 60:.1f} min at 40% of {k} peak" for k, v in H100.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1280, help="training images per timed epoch")
    ap.add_argument("--rounds", type=int, default=3, help="timed epochs per process (median reported); "
                    "with --in-process: alternating rounds")
    ap.add_argument("--pairs", type=int, default=4, help="alternating pairs of processes (trainer, hand-written)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--real", action="store_true", help="use the real LFW mirror")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="the trainer's config only")
    ap.add_argument("--in-process", action="store_true",
                    help="both loops in this one process, alternating rounds (the allocator setting then applies "
                         "to both: compares the loops' code alone)")
    ap.add_argument("--hand-heap", action="store_true",
                    help="give the hand-written loop's process the trainer's allocator setting too")
    ap.add_argument("--only", choices=["trainer", "hand"], help=argparse.SUPPRESS)  # a child process
    args = ap.parse_args()
    if args.pairs < 1 or args.rounds < 1 or args.images < 1:
        ap.error("--pairs, --rounds and --images must be at least 1")
    if args.hand_heap and args.in_process:
        ap.error("--hand-heap gives the hand-written loop's own process the setting; with --in-process both loops "
                 "share the trainer's process, which has it already")
    config = build_config("lfw_faces_attrs", preset=args.preset, sets=[f"train.device={args.device}", *args.set])
    device = pick_device(args.device)
    if args.only:
        return child(args, config, device)
    low = autocast_dtype(device, config.train.speed)
    print(f"device={device} threads={torch.get_num_threads()} batch={config.train.batch_size} "
          f"images/epoch={args.images} preset={args.preset} data={'LFW mirror' if args.real else 'random uint8'} "
          f"trainer autocast={low or 'off (float32)'} sets={args.set} "
          f"{'in one process' if args.in_process else 'one process per loop'} load average {os.getloadavg()[0]:.1f}")
    (in_process if args.in_process else isolated)(args, config, device)


if __name__ == "__main__":
    main()
