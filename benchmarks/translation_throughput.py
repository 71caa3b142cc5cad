"""Target tokens/s of cmmkit's ``direct`` translation step against a hand-written ``torch.nn.Transformer`` loop.

Both train a Transformer of the multi30k default preset's size (width 256, 4 heads, 3 encoder and 3
decoder layers, feed-forward 1024, dropout 0.1, tied output embeddings, learned positions) with
Adam on the same length-bucketed batches of real Multi30k data (``pair.batch_tokens``, the
trainer's own ``epoch_batches``). The cmmkit side is the real training step
(:meth:`cmmkit.training.trainer.Trainer.train_step` on the ``direct`` model: BERT layers from
transformers, the per-position code layer, the masked teacher-forced likelihood); the reference is
an 60-line loop around ``nn.Transformer``. Rounds alternate (A B A B ...) and flip order each round,
so drift of a shared machine hits both; the ratio of median tokens/s is printed (target >= 0.9), with
the machine's matmul peak measured in the same run.

    CMMKIT_DATA=../shared/data python benchmarks/translation_throughput.py [--steps 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _peak import (
    matmul_peak,  # benchmarks/_peak.py (the script's folder is on sys.path)
)
from torch import nn
from torch.nn import functional as F

from cmmkit.config import build_config
from cmmkit.runs import build_model, load_data
from cmmkit.training.rundir import RunDir
from cmmkit.training.trainer import Trainer


class Reference(nn.Module):
    """A plain encoder-decoder Transformer of the same size (the usual PyTorch tutorial model)."""

    def __init__(self, src_vocab: int, tgt_vocab: int, d: int, heads: int, layers: int, ff: int, dropout: float,
                 max_len: int = 128) -> None:
        super().__init__()
        self.src_emb, self.tgt_emb = nn.Embedding(src_vocab, d), nn.Embedding(tgt_vocab, d)
        self.src_pos, self.tgt_pos = nn.Embedding(max_len, d), nn.Embedding(max_len, d)
        self.transformer = nn.Transformer(d, heads, layers, layers, ff, dropout, batch_first=True)
        self.out_bias = nn.Parameter(torch.zeros(tgt_vocab))

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt: torch.Tensor, tgt_mask: torch.Tensor) -> torch.Tensor:
        s = self.src_emb(src) + self.src_pos(torch.arange(src.shape[1]))
        t = self.tgt_emb(tgt) + self.tgt_pos(torch.arange(tgt.shape[1]))
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        h = self.transformer(s, t, tgt_mask=causal, src_key_padding_mask=~src_mask, tgt_key_padding_mask=~tgt_mask,
                             memory_key_padding_mask=~src_mask, tgt_is_causal=True)
        return F.linear(h, self.tgt_emb.weight, self.out_bias)


def reference_step(model: Reference, opt: torch.optim.Optimizer, batch: dict) -> None:
    src, src_mask = batch["y"]["ids"], batch["y"]["mask"].bool()
    ids, mask = batch["x"]["ids"], batch["x"]["mask"].bool()
    logits = model(src, src_mask, ids[:, :-1], mask[:, :-1])
    nll = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="none").view(len(ids), -1)
    loss = (nll * mask[:, 1:]).sum(1).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = build_config("multi30k_en_de", model="direct")
    data = load_data(config, progress=False)
    ds = data.splits["train"]
    batches = ds.epoch_batches(config.train.batch_size, torch.Generator().manual_seed(0))
    picked = [ds.get_batch(b) for b in batches[:args.steps * args.rounds + 2]]
    tokens = lambda bs: sum(int(b["x"]["mask"][:, 1:].sum()) for b in bs)

    _, model = build_model(config, data.info)
    tmp = tempfile.TemporaryDirectory()
    trainer = Trainer(config, model, data, RunDir(Path(tmp.name)), progress=False)
    o = config.pair.x
    ref = Reference(model.y.vocab, model.x.vocab, o.hidden, o.heads, o.layers, o.ff, o.dropout)
    ref_opt = torch.optim.Adam(ref.parameters(), lr=config.train.optimizer.lr, **config.train.optimizer.kwargs)
    model.train(), ref.train()
    ours = lambda b: trainer.train_step(model.prepare(b))
    theirs = lambda b: reference_step(ref, ref_opt, b)
    for b in picked[:2]:  # warm-up: allocator, first-call costs
        ours(b), theirs(b)
    rates: dict[str, list[float]] = {"cmmkit": [], "reference": []}
    for r in range(args.rounds):
        chunk = picked[2 + r * args.steps: 2 + (r + 1) * args.steps]
        order = [("cmmkit", ours), ("reference", theirs)]
        for name, step in (order if r % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            for b in chunk:
                step(b)
            rates[name].append(tokens(chunk) / (time.perf_counter() - start))
    peak = matmul_peak()
    params = {"cmmkit": sum(p.numel() for p in model.parameters()), "reference": sum(p.numel() for p in ref.parameters())}
    print(f"threads {torch.get_num_threads()}, matmul peak {peak:.0f} GFLOP/s, {args.rounds} rounds x {args.steps} "
          f"steps of <= {config.pair.batch_tokens} tokens")
    for name, values in rates.items():
        print(f"{name:>9}: {statistics.median(values):7.0f} target tokens/s (rounds: "
              f"{', '.join(f'{v:.0f}' for v in values)}; {params[name] / 1e6:.2f} M parameters)")
    ratio = statistics.median(rates["cmmkit"]) / statistics.median(rates["reference"])
    print(f"ratio cmmkit/reference: {ratio:.2f} (target >= 0.9)")
    tmp.cleanup()


if __name__ == "__main__":
    main()
