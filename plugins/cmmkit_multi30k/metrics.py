"""Pair measures of ``cmmkit evaluate`` for translation: BLEU and the per-token likelihood.

Why here and not in the core: BLEU only makes sense for text with references. Both measures only
use the generic model contract (``generate``, ``evaluate``), so they work for CMMA, CVAE and the
``direct`` reference alike.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from cmmkit.api import DataError, atomic_write_bytes, to_device

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
            hyps += run.model.x.to_user(run.model.generate(run.model.y.prepare(raw["y"], False), noise_scale=0.0))
            bar.update(len(idx))
    refs = list(ds.target_texts[:ctx.n])
    metric = BLEU()
    score = metric.corpus_score(hyps, [refs])
    lower = BLEU(lowercase=True).corpus_score(hyps, [refs]).score  # the literature's numbers are lowercased
    out_file = Path(run.path) / f"translations_{ctx.opts.split}.txt"  # the text users get, one line each
    atomic_write_bytes(out_file, "".join(f"{h}\n" for h in hyps).encode("utf-8"))
    samples = [{"source": s, "reference": r, "hypothesis": h}
               for s, r, h in zip(ds.source_texts[:SHOWN], refs[:SHOWN], hyps[:SHOWN])]
    return {"bleu": score.score, "bleu_lowercase": lower, "translations_file": str(out_file),
            "signature": str(metric.get_signature()), "precisions": list(score.precisions),
            "brevity_penalty": score.bp, "hyp_len": score.sys_len, "ref_len": score.ref_len, "examples": ctx.n,
            "beam_size": run.model.x.options.beam_size,
            "length_penalty": run.model.x.options.length_penalty, "samples": samples, "summary": {"BLEU": score.score, "BLEU (lowercased)": lower}}


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
        nats += float(run.model.evaluate(run.model.prepare(raw))["bound"].sum())
        tokens += int(raw["x"]["mask"].sum()) - len(idx)  # predicted tokens: all but BOS
    per_token = nats / max(tokens, 1)
    return {"nats_per_sentence": nats / ctx.n, "nats_per_token": per_token, "bits_per_token": -per_token / math.log(2),
            "perplexity": math.exp(-per_token), "tokens": tokens, "examples": ctx.n,
            "summary": {"log p / bound (nats/sent)": nats / ctx.n, "bits/token": -per_token / math.log(2)}}


DIVERSITY_SENTENCES, DIVERSITY_SAMPLES = 500, 5


@torch.no_grad()
def diversity(ctx: Any) -> dict[str, Any] | None:
    """What a latent gives that a deterministic model cannot: for the first 500 sentences of the split,
    5 translations each decoded (beam search, token noise 0) from z sampled from p(z | y) (noise 1).

    - ``mean_sample_bleu``: corpus BLEU of each set of samples against the references, averaged;
    - ``best_of_5_bleu``: corpus BLEU when each sentence keeps its sample closest to the reference
      (sentence BLEU), an oracle: how much better a reranker could do;
    - ``self_bleu``: BLEU of each sample against the other four as references, averaged (100: all
      samples identical; lower: more diverse). For ``direct`` (no latent) the samples are identical.
    Seeded (seed 0), so the figures are reproducible."""
    from sacrebleu.metrics import BLEU

    _check_tokenizers(ctx)
    run, ds = ctx.run, ctx.dataset
    n = min(ctx.n, DIVERSITY_SENTENCES)
    run.model.eval()
    samples: list[list[str]] = [[] for _ in range(DIVERSITY_SAMPLES)]
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []):
        torch.manual_seed(0)
        with ctx.bar("diversity (sampling z)", total=n * DIVERSITY_SAMPLES) as bar:
            for start in range(0, n, ctx.opts.batch_size):
                idx = torch.arange(start, min(start + ctx.opts.batch_size, n))
                y = run.model.y.prepare(to_device(ds.get_batch(idx), run.device)["y"], dequantize=False)
                for s in range(DIVERSITY_SAMPLES):
                    out = run.model.generate(y, noise_scale=1.0, output_noise=0.0)
                    samples[s] += run.model.x.to_user(out)
                    bar.update(len(idx))
    refs = list(ds.target_texts[:n])
    corpus = BLEU()
    sentence = BLEU(effective_order=True)
    mean_sample = sum(corpus.corpus_score(s, [refs]).score for s in samples) / DIVERSITY_SAMPLES
    best = [max((samples[s][i] for s in range(DIVERSITY_SAMPLES)),
                key=lambda h: sentence.sentence_score(h, [refs[i]]).score) for i in range(n)]
    self_bleu = sum(corpus.corpus_score(samples[s], [samples[o] for o in range(DIVERSITY_SAMPLES) if o != s]).score
                    for s in range(DIVERSITY_SAMPLES)) / DIVERSITY_SAMPLES
    distinct = sum(len({samples[s][i] for s in range(DIVERSITY_SAMPLES)}) for i in range(n)) / n
    shown = [{"source": ds.source_texts[i], "reference": refs[i],
              "samples": [samples[s][i] for s in range(DIVERSITY_SAMPLES)]} for i in range(min(3, n))]
    best_score = corpus.corpus_score(best, [refs]).score
    return {"sentences": n, "samples_per_sentence": DIVERSITY_SAMPLES, "mean_sample_bleu": mean_sample,
            "best_of_5_bleu": best_score, "self_bleu": self_bleu, "distinct_per_sentence": distinct,
            "examples": shown,
            "summary": {"sample BLEU": mean_sample, "best-of-5 BLEU": best_score, "self-BLEU": self_bleu}}
