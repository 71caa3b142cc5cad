"""Attribute fidelity: do x generated from attributes y show them? (the LFW pair's measure, which
any pair with a named-vector y and an ``attribute_judge`` can declare too)

An ``attribute_judge`` run (``cmmkit train-judge``) scores generated faces; the AUC of its scores
against the requested attributes, per attribute, is compared with its AUC on the real faces of the
same split, which is the ceiling a perfect generator could reach under this judge.
"""

from __future__ import annotations

from typing import Any

import torch

from cmmkit.api import CheckpointError, EvalContext, load_judge, mean_auc, per_attribute_auc, to_device


@torch.no_grad()
def attribute_fidelity(ctx: EvalContext) -> dict[str, Any] | None:
    """Per-attribute AUC of a judge's scores on x generated (noise 0) from the split's y, beside
    its AUC on the real x (the ceiling). None when no ``--judge`` was given."""
    run, dataset, opts = ctx.run, ctx.dataset, ctx.opts
    if opts.judge is None:
        return None
    judge = load_judge(opts.judge, run)
    names = list(run.model.y.info.get("names", []))
    if list(judge.model.y.info.get("names", [])) != names:
        raise CheckpointError(f"--judge {opts.judge}: judges other attributes than this run's pair")
    real, fake, labels = [], [], []
    with ctx.bar("attribute fidelity") as bar:
        for idx in ctx.batches():
            raw = to_device(dataset.get_batch(idx), run.device)
            real.append(judge.model.logits(judge.model.x.prepare(raw["x"], dequantize=False)).cpu())
            fake.append(judge.model.logits(run.model.generate(run.model.y.prepare(raw["y"], dequantize=False),
                                                              noise_scale=0.0)).cpu())
            labels.append((raw["y"] > 0).cpu())
            bar.update(len(idx))
    lab = torch.cat(labels)
    auc, real_auc = per_attribute_auc(torch.cat(fake), lab, names), per_attribute_auc(torch.cat(real), lab, names)
    return {"judge": str(judge.path), "mean_auc": mean_auc(auc), "real_mean_auc": mean_auc(real_auc),
            "auc": auc, "real_auc": real_auc}
