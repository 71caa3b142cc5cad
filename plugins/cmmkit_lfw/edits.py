"""``cmmkit evaluate-edits``: how well a run edits attributes (§4.5) and infers them (Fig. 10).

Edit fidelity. For each attribute a and each of the first N faces of a split, flip a (to its
largest training value when the face's value is in the lower half of the range, else to its
smallest) and edit the face with the run (CMMA's five steps, the CVAE counterpart). An attribute
judge scores the edit and the unchanged reconstruction (the edit with attr_new = attr_orig); the
edit "moves the asked way" when the judge's logit for a changes in the flip's direction. Comparing
with the reconstruction, not the input, isolates the effect of the change from the blur of
reconstruction. 50% is chance; the rate is reported per attribute, for additions and removals
separately, and averaged. A direction says nothing of size, so two more numbers: the mean change of
the logit in the asked direction, and how often the judge's decision after the edit is the asked
one (the attribute "reached": present after an addition, absent after a removal).

Attribute inference. A ``model.posterior=x`` CMMA infers y from x alone (q(y|z) on q(z|x), §2.1).
On the split's faces, its inferred values are scored against the real attributes: per-attribute
accuracy of the sign (present = value above the middle of the training range), beside the accuracy
of always guessing the training majority, and the AUC of the inferred values.

Results go to ``RUN/edit_eval.json`` (atomically) and a markdown table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from tqdm.auto import tqdm

from cmmkit.api import (
    CheckpointError,
    ConfigError,
    Options,
    TrainedRun,
    __version__,
    load_data,
    load_judge,
    load_run,
    mean_auc,
    no_bar,
    per_attribute_auc,
    suggest,
    to_device,
    write_json,
)

EDIT_FILE = "edit_eval.json"


class EditEvalOptions(Options):
    """``cmmkit evaluate-edits``'s options (validated: a bad value is a ConfigError naming its flag)."""

    judge: Path | None = None
    infer_with: Path | None = Field(None, description="a posterior=x CMMA run (default: the run itself when it can infer)")
    split: str = "test"
    examples: int = Field(200, ge=1)
    attributes: list[str] | None = Field(None, min_length=1, description="None: all")
    batch_size: int = Field(100, ge=1)
    seed: int = 0
    data_dir: Path | None = None
    device: str = "auto"


@torch.no_grad()
def edit_fidelity(run: TrainedRun, judge: TrainedRun, x: torch.Tensor, y: torch.Tensor, names: list[str],
                  batch_size: int, progress: bool) -> dict[str, Any]:
    """Rates at which judge logits move the asked way when one attribute is flipped (see module doc)."""
    run.check_can_edit()
    all_names = list(run.model.y.info["names"])
    lo, hi = (torch.tensor(v) for v in run.model.y.bounds())
    mid = (lo + hi) / 2
    starts = range(0, len(x), batch_size)
    prep_x, prep_y = run.model.x.prepare, run.model.y.prepare  # the model reads prepared values
    batches = [(prep_x(to_device(x[s:s + batch_size], run.device), dequantize=False), y[s:s + batch_size])
               for s in starts]
    before_all = []  # the judge's scores of each unedited reconstruction: the same for every flipped attribute
    for xb, yb in batches:
        yd = prep_y(to_device(yb, run.device), dequantize=False)
        before_all.append(judge.model.logits(run.model.edit(xb, yd, yd)).cpu())
    per: dict[str, Any] = {}
    for name in tqdm(names, desc="edit fidelity", unit="attr", disable=no_bar(progress), leave=False):
        a = all_names.index(name)
        added, reached, delta = [], [], []
        for (xb, yb), before in zip(batches, before_all):
            add = yb[:, a] <= mid[a]
            yn = yb.clone()
            yn[:, a] = torch.where(add, hi[a], lo[a])
            after = judge.model.logits(run.model.edit(xb, prep_y(to_device(yb, run.device), dequantize=False),
                                                      prep_y(to_device(yn, run.device), dequantize=False)))[:, a]
            after = after.cpu()
            reached.append((after > 0) == add)
            delta.append((after - before[:, a]) * torch.where(add, 1.0, -1.0))
            added.append(add)
        d, ad = torch.cat(delta), torch.cat(added)
        m = (d > 0).float()
        per[name] = {"rate": float(m.mean()), "add_rate": float(m[ad].mean()) if ad.any() else None,
                     "remove_rate": float(m[~ad].mean()) if (~ad).any() else None,
                     "reached_rate": float(torch.cat(reached).float().mean()),
                     "mean_logit_change": float(d.mean()),
                     "adds": int(ad.sum()), "removes": int((~ad).sum())}
    mean = lambda key: sum(v[key] for v in per.values()) / len(per)
    return {"judge": str(judge.path), "examples": len(x), "mean_rate": mean("rate"),
            "mean_reached_rate": mean("reached_rate"), "mean_logit_change": mean("mean_logit_change"),
            "per_attribute": per}


@torch.no_grad()
def inference_accuracy(inferrer: TrainedRun, x: torch.Tensor, y: torch.Tensor, train_mean: torch.Tensor,
                       batch_size: int) -> dict[str, Any]:
    """Sign accuracy and AUC of attributes inferred from faces, with the majority baseline."""
    names = list(inferrer.model.y.info["names"])
    lo, hi = (torch.tensor(v) for v in inferrer.model.y.bounds())
    mid = (lo + hi) / 2
    prep = inferrer.model.x.prepare
    inferred = torch.cat([inferrer.model.infer_y(prep(to_device(x[s:s + batch_size], inferrer.device), False)).cpu()
                          for s in range(0, len(x), batch_size)])
    truth, guess = y > mid, inferred > mid
    majority = (train_mean > mid).expand_as(truth)
    acc = (guess == truth).float().mean(0)
    base = (majority == truth).float().mean(0)
    auc = per_attribute_auc(inferred, truth, names)
    return {"run": str(inferrer.path), "examples": len(x), "mean_accuracy": float(acc.mean()),
            "majority_mean_accuracy": float(base.mean()), "mean_auc": mean_auc(auc),
            "per_attribute": {n: {"accuracy": float(acc[i]), "majority_accuracy": float(base[i]), "auc": auc[n]}
                              for i, n in enumerate(names)}}


def evaluate_edits(run_dir: str | Path, opts: EditEvalOptions, *, progress: bool = True) -> dict[str, Any]:
    """Edit fidelity (with ``opts.judge``) and inference accuracy (when the run or ``infer_with``
    can infer) on ``opts.split``; written to ``RUN/edit_eval.json``."""
    run = load_run(run_dir, device=opts.device)
    config = run.config
    if opts.judge is None and opts.infer_with is None and not run.model.can_infer:
        raise ConfigError("nothing to evaluate: give --judge (edit fidelity) and/or --infer-with, or evaluate a "
                          "model.posterior=x CMMA run (attribute inference)")
    names = list(run.model.y.info.get("names", []))
    if not names:
        raise ConfigError(f"{run.path}: edit evaluation needs named attributes as y (pair {config.pair.name} has none)")
    for a in opts.attributes or []:
        if a not in names:
            raise ConfigError(f"--attributes: unknown attribute {a!r}.{suggest(a, names)}")
    data = load_data(config, data_dir=opts.data_dir, progress=progress)
    if opts.split not in data.splits:
        raise ConfigError(f"--split {opts.split!r}: no such split; {config.pair.name} has {', '.join(data.splits)}")
    ds = data.splits[opts.split]
    n = min(opts.examples, len(ds))
    batch = ds.get_batch(torch.arange(n))
    x, y = batch["x"], batch["y"].float()
    out: dict[str, Any] = {"cmmkit_version": __version__, "run": str(run.path), "model": run.model.name,
                           "split": opts.split, "examples": n, "edit_fidelity": None, "attribute_inference": None}
    torch.manual_seed(opts.seed)
    if opts.judge is not None:
        judge = load_judge(opts.judge, run)
        if list(judge.model.y.info.get("names", [])) != names:
            raise CheckpointError(f"--judge {opts.judge}: judges other attributes than this run's pair")
        out["edit_fidelity"] = edit_fidelity(run, judge, x, y, opts.attributes or names, opts.batch_size, progress)
    inferrer = load_run(opts.infer_with, device=str(run.device)) if opts.infer_with else run if run.model.can_infer else None
    if inferrer is not None:
        train_mean = torch.tensor(run.model.y.info["mean"])
        out["attribute_inference"] = inference_accuracy(inferrer, x, y, train_mean, opts.batch_size)
    write_json(run.path / EDIT_FILE, out)
    return out



def edit_table(result: dict[str, Any], keys: list[str] | None = None) -> str:
    """Markdown: per-attribute edit fidelity and inference accuracy (the paper's attributes first)."""
    from cmmkit_lfw.report import KEY_ATTRIBUTES

    fid, inf = result.get("edit_fidelity"), result.get("attribute_inference")
    names = list((fid or {}).get("per_attribute", {}) or (inf or {}).get("per_attribute", {}))
    keys = keys or [k for k in KEY_ATTRIBUTES if k in names] or names[:10]
    lines = [f"{result['model']} ({result['run']}), {result['split']} split, {result['examples']} faces", ""]
    header = ["Attribute"]
    if fid:
        header += ["judge moves the asked way", "(adding)", "(removing)", "judge reaches it", "logit change"]
    if inf:
        header += ["inferred sign accuracy", "majority baseline", "inference AUC"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    f = lambda v: "—" if v is None else f"{v:.3f}"
    for k in keys + ["mean (all attributes)"]:
        row = [k]
        if fid:
            p = fid["per_attribute"].get(k)
            row += ([f(fid["mean_rate"]), "", "", f(fid["mean_reached_rate"]), f(fid["mean_logit_change"])]
                    if p is None else [f(p["rate"]), f(p["add_rate"]), f(p["remove_rate"]), f(p["reached_rate"]),
                                       f(p["mean_logit_change"])])
        if inf:
            p = inf["per_attribute"].get(k)
            row += ([f(inf["mean_accuracy"]), f(inf["majority_mean_accuracy"]), f(inf["mean_auc"])] if p is None
                    else [f(p["accuracy"]), f(p["majority_accuracy"]), f(p["auc"])])
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
