"""Does the decoder read the source through z? A short training probe for any pair and model.

Trains a fresh model for ``--steps`` Adam steps (the preset's networks, ``--set`` overrides) and every
``--every`` steps prints, on 128 test examples:

- ``spread``: the std across examples of f's mean (CMMA) or of the code (``direct``), averaged over
  dimensions (a structured latent averaged over its positions first): how much the conditioning input
  moves the decoder's input;
- ``gain``: log p(x | z) at each example's own prior mean minus at the prior means of shuffled
  examples (nats): what the decoder gets from the source. 0 means it ignores z (posterior collapse);
- for latent models the prior's mean log-variance and the KL of the bound.

This is how docs/pairs/multi30k_en_de.md diagnosed CMMA's posterior collapse on translation:

    CMMKIT_DATA=/path/to/data OMP_NUM_THREADS=1 python examples/latent_use_probe.py \\
        --pair multi30k_en_de --model cmma --set pair.train_size=12000 --steps 400
"""

from __future__ import annotations

import argparse
import time

import torch

from cmmkit import bound
from cmmkit.config import build_config
from cmmkit.modality import Code, code_parts
from cmmkit.runs import build_model, load_data


def _pooled(code: torch.Tensor | Code) -> torch.Tensor:
    """(B, D): a flat code as is, a structured one averaged over its real positions."""
    feats, mask = code_parts(code)
    if feats.dim() == 2:
        return feats
    w = torch.ones(feats.shape[:-1]) if mask is None else mask.float()
    return (feats * w[..., None]).flatten(1, -2).sum(1) / w.flatten(1).sum(1, keepdim=True)


def _rows(code: torch.Tensor | Code, index: torch.Tensor) -> torch.Tensor | Code:
    """Examples ``index`` of a code, its mask going with it (a structured code keeps its positions)."""
    feats, mask = code_parts(code)
    return Code(feats[index], None if mask is None else mask[index]) if isinstance(code, Code) else feats[index]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", required=True)
    ap.add_argument("--model", default="cmma")
    ap.add_argument("--preset", default=None, help="the pair's preset (its default when left out)")
    ap.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    cfg = build_config(args.pair, preset=args.preset, model=args.model, sets=args.sets)
    data = load_data(cfg, progress=False)
    _, model = build_model(cfg, data.info)
    latent = hasattr(model, "prior")
    if not latent and not hasattr(model, "code"):
        raise SystemExit(f"model {args.model!r} has neither a prior p(z | y) nor a code: nothing to probe")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98))
    train, test = data.splits["train"], data.splits["test"]
    n = min(128, len(test))
    probe_batch = model.prepare(test.get_batch(torch.arange(n)))
    shuffle = torch.randperm(n)

    def probe(step: int) -> None:
        model.eval()
        with torch.no_grad():
            extra = ""
            if latent:
                p = model.prior(probe_batch["y"])
                z = p.sample_code(0.0)
                kl = float(bound.elbo(model, probe_batch).kl.mean())
                extra = f"  prior logvar {float(p.logvar.mean()):.2f}  kl {kl:.3f}"
            else:
                z = model.code(probe_batch["y"])
            own = model.decoder.log_prob(z, probe_batch["x"]).mean()
            other = model.decoder.log_prob(_rows(z, shuffle), probe_batch["x"]).mean()
        print(f"step {step:5d}  spread {float(_pooled(z).std(0).mean()):.4f}  log p(x|z) {float(own):.2f}  "
              f"gain {float(own - other):.2f}{extra}", flush=True)
        model.train()

    start = time.time()
    model.train()
    for step in range(args.steps):
        raw = train.get_batch(torch.randint(len(train), (min(cfg.train.batch_size, 64),)))
        loss, _ = model.training_loss(model.prepare(raw))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.every == 0 or step == args.steps - 1:
            probe(step)
    print(f"{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
