"""A spoken-digit classifier ("judge") and the pair's ``digit_accuracy`` measure.

The judge reads a log-mel spectrogram with the x modality's conv encoder and predicts the digit
(0-9) of the ``digit_text`` condition. It is a model like any other, so ``cmmkit train-judge``
trains it with the one trainer on real training spectrograms; it does not generate. Its accuracy
on the real recordings of a split is the ceiling for the accuracy on speech generated from the
same split's conditions.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch.nn import functional as F

from cmmkit.errors import CheckpointError, ConfigError
from cmmkit.modality import Modality, Value, to_device
from cmmkit.models.judge import Classifier, ClassifierConfig


class DigitClassifierConfig(ClassifierConfig):
    name: Literal["digit_classifier"] = "digit_classifier"
    hidden: int = Field(128, ge=1, description="features of x before the digit logits")


class DigitClassifier(Classifier):
    """Digit logits (B, 10) of a spectrogram; needs a ``digit_text`` condition (its ``digit_class``)."""

    name = "digit_classifier"
    Config = DigitClassifierConfig
    loss_name = "cross_entropy"
    config: DigitClassifierConfig

    def outputs(self, y: Modality) -> int:
        if not hasattr(y, "digit_class"):
            raise ConfigError(f"digit_classifier judges spoken digits: it needs a digit_text condition, not {y.name}")
        return 10

    def loss_and_accuracy(self, logits: torch.Tensor, y: Value) -> tuple[torch.Tensor, torch.Tensor]:
        labels = self.y.digit_class(y)  # type: ignore[attr-defined]
        return F.cross_entropy(logits, labels, reduction="none"), (logits.argmax(-1) == labels).float()


@torch.no_grad()
def digit_accuracy(ctx: Any) -> dict[str, Any] | None:
    """The judge's digit accuracy on speech generated from the split's conditions at noise 0 and
    sampled at noise 1, beside its accuracy on the split's real recordings (the ceiling). None
    without ``--judge``."""
    from cmmkit.runs import load_judge

    run, opts = ctx.run, ctx.opts
    if opts.judge is None:
        return None
    judge = load_judge(opts.judge, run)
    for key in ("mels", "frames", "sample_rate", "num_samples"):
        if judge.model.x.info.get(key) != run.model.x.info.get(key):
            raise CheckpointError(f"--judge {opts.judge}: judges spectrograms with {key}={judge.model.x.info.get(key)}, "
                                  f"this run makes {key}={run.model.x.info.get(key)}")
    run.model.eval()
    # the judge normalises with its own training statistics: go through raw log-mel values
    to_judge = lambda prepared: judge.model.logits(  # noqa: E731
        judge.model.x.prepare(run.model.x.unnormalise(prepared)))
    correct = {"generated": 0, "sampled": 0, "real": 0}
    per_digit = torch.zeros(10, dtype=torch.long)
    per_digit_n = torch.zeros(10, dtype=torch.long)
    with ctx.bar("digit accuracy") as bar:
        for idx in ctx.batches():
            raw = to_device(ctx.dataset.get_batch(idx), run.device)
            labels = run.model.y.digit_class(raw["y"])
            real = judge.model.logits(judge.model.x.prepare(raw["x"])).argmax(-1)
            gen = to_judge(run.model.generate(raw["y"], noise_scale=0.0)).argmax(-1)
            sam = to_judge(run.model.generate(raw["y"], noise_scale=1.0)).argmax(-1)
            correct["real"] += int((real == labels).sum())
            correct["generated"] += int((gen == labels).sum())
            correct["sampled"] += int((sam == labels).sum())
            per_digit.index_add_(0, labels.cpu(), (gen == labels).long().cpu())
            per_digit_n.index_add_(0, labels.cpu(), torch.ones_like(labels).cpu())
            bar.update(len(idx))
    n = ctx.n
    acc = {k: v / n for k, v in correct.items()}
    digits = run.model.y.info["digits"]
    return {"judge": str(judge.path), "examples": n, "accuracy_generated": acc["generated"],
            "accuracy_sampled": acc["sampled"], "accuracy_real": acc["real"],
            "per_digit_generated": {d: (int(c) / int(m) if m else None)
                                    for d, c, m in zip(digits, per_digit, per_digit_n)},
            "summary": {"digit acc. generated": acc["generated"], "digit acc. sampled": acc["sampled"],
                        "digit acc. real": acc["real"]}}
