"""Pair measures of ``cmmkit evaluate`` for translation: BLEU and the per-token likelihood.

Why here and not in the core: BLEU only makes sense for text with references. Both measures only
use the generic model contract (``generate``, ``evaluate``), so they work for CMMA, CVAE and the
``direct`` reference alike.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cmmkit.errors import DataError
from cmmkit.modality import to_device

SHOWN = 10  # hypotheses/references included in eval.json


def _check_tokenizers(ctx: Any) -> None:
    """The split must be tokenized with the run's tokenizers (the modality checks each batch too)."""
    model, ds = ctx.run.model, ctx.dataset
    for side, mod, fp in (("x", model.x, getattr(ds, "x_fp", None)), ("y", model.y, getattr(ds, "y_fp", None))):
        if fp is not None and fp != mod.fingerprint:
            raise DataError(f"the {side} side of the data was tokenized with another tokenizer than this run's "
                            f"(sha256 {mod.info.get('tokenizer_sha256', '?')[:12]}); evaluate with the pair options "
                            "the run was trained with")


@torch.no_grad()
def bleu(ctx: Any) -> dict[str, Any]:
    """sacreBLEU corpus BLEU of translations decoded from the prior mean (noise 0: beam search of
    ``pair.x.beam_size``) against the split's raw references."""
    from sacrebleu.metrics import BLEU

    _check_tokenizers(ctx)
    run, ds = ctx.run, ctx.dataset
    run.model.eval()
    hyps: list[str] = []
    with ctx.bar("BLEU (decoding)") as bar:
        for idx in ctx.batches():
            raw = to_device(ds.get_batch(idx), run.device)
            hyps += run.model.x.to_user(run.model.generate(raw["y"], noise_scale=0.0))
            bar.update(len(idx))
    refs = list(ds.target_texts[:ctx.n])
    metric = BLEU()
    score = metric.corpus_score(hyps, [refs])
    samples = [{"source": s, "reference": r, "hypothesis": h}
               for s, r, h in zip(ds.source_texts[:SHOWN], refs[:SHOWN], hyps[:SHOWN])]
    return {"bleu": score.score, "signature": str(metric.get_signature()), "precisions": list(score.precisions),
            "brevity_penalty": score.bp, "hyp_len": score.sys_len, "ref_len": score.ref_len, "examples": ctx.n,
            "beam_size": run.model.x.options.beam_size, "samples": samples, "summary": {"BLEU": score.score}}


@torch.no_grad()
def log_likelihood(ctx: Any) -> dict[str, Any]:
    """Mean of the model's own ``bound`` per sentence and per predicted token: the exact log p(x | y)
    for ``direct``, the ELBO (a lower bound on it) for latent-variable models. Reported for every
    model so runs compare on one scale."""
    run, ds = ctx.run, ctx.dataset
    run.model.eval()
    nats, tokens = 0.0, 0
    for idx in ctx.batches():
        raw = to_device(ds.get_batch(idx), run.device)
        nats += float(run.model.evaluate(raw)["bound"].sum())
        tokens += int(raw["x"]["mask"].sum()) - len(idx)  # predicted tokens: all but BOS
    per_token = nats / max(tokens, 1)
    return {"nats_per_sentence": nats / ctx.n, "nats_per_token": per_token, "bits_per_token": -per_token / math.log(2),
            "perplexity": math.exp(-per_token), "tokens": tokens, "examples": ctx.n,
            "summary": {"log p / bound (nats/sent)": nats / ctx.n, "bits/token": -per_token / math.log(2)}}
