"""The pair's ``digit_accuracy`` measure, and the old log-mel ``digit_classifier``.

``digit_accuracy`` (``cmmkit evaluate --judge JUDGE``) scores what users get: speech generated from
the split's conditions goes through the pair's own vocoder path (``to_user``: inverse mel scale and
Griffin-Lim, or the source-filter vocoder of a pitched run such as the CMMA default), is written as 16-bit WAV files exactly as ``cmmkit generate -o x.wav`` writes them,
read back, and judged by the ``speech_judge`` (:mod:`cmmkit_fsdd.listener`), whose analysis the
model never sees. Beside it, the ceilings: the real recordings, and the real recordings passed
through cmmkit's analysis and the run's vocoder.

``digit_classifier`` is the earlier judge: the x modality's conv encoder on cmmkit's own log-mel
features. It rewarded prototype spectrograms no listener would recognise (docs/pairs/
fsdd_digits_speech.md); it stays registered so saved ones load and can be compared
(:mod:`cmmkit_fsdd.compare_judges`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch.nn import functional as F

from cmmkit.api import CheckpointError, Classifier, ClassifierConfig, ConfigError, Modality, Value
from cmmkit_fsdd import wav


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


#: what is judged: name -> (noise_scale, output_noise) of generation; None for the real recordings
KINDS: dict[str, tuple[float, float] | None] = {
    "real": None,  # the split's recordings (ceiling)
    "vocoded": None,  # the recordings through cmmkit's analysis + the run's vocoder (the vocoder's ceiling)
    "generated": (0.0, 0.0),  # noise 0: z at the prior mean, the decoder's mean
    "sampled": (1.0, 1.0),  # noise 1: z sampled and the decoder's own noise
    "sampled_z": (1.0, 0.0),  # z sampled, the decoder's mean at it
}


def _speech(run: Any, raw_x: torch.Tensor, y: torch.Tensor, kind: str) -> list[Any]:
    model = run.model
    if kind == "vocoded":
        return model.x.to_user(model.x.prepare(raw_x.to(run.device)))
    noise, output_noise = KINDS[kind]  # type: ignore[misc]
    return model.x.to_user(model.generate(model.y.prepare(y, dequantize=False), noise_scale=noise,
                                          output_noise=output_noise))


@torch.no_grad()
def digit_accuracy(ctx: Any) -> dict[str, Any] | None:
    """The speech judge's digit (and speaker) accuracy on WAV files generated from the split's
    conditions at noise 0, at noise 1 and with only z sampled, beside its accuracy on the real
    recordings and on the real recordings round-tripped through the vocoder (the ceilings). The
    judged WAVs are kept in ``RUN/judged_speech/<split>/<kind>/``. None without ``--judge``."""
    from cmmkit.api import load_judge

    run, opts = ctx.run, ctx.opts
    if opts.judge is None:
        return None
    judge = load_judge(opts.judge, run)
    if int(run.model.x.info.get("sample_rate", 0)) != wav.SAMPLE_RATE:
        raise CheckpointError(f"--judge {opts.judge}: listens to {wav.SAMPLE_RATE} Hz speech, this run makes "
                              f"{run.model.x.info.get('sample_rate')} Hz")
    listener = judge.model
    run.model.eval()
    with_speaker = bool(listener.speakers) and run.model.y.with_speaker
    if with_speaker and listener.speakers != list(run.model.y.info["speakers"]):
        raise CheckpointError(f"--judge {opts.judge}: knows speakers {listener.speakers}, this run "
                              f"{run.model.y.info['speakers']}")
    folder = run.path / "judged_speech" / opts.split
    digits = run.model.y.info["digits"]
    correct = {k: 0 for k in KINDS}
    speaker_correct = {k: 0 for k in KINDS}
    per_digit = torch.zeros(10, dtype=torch.long)
    per_digit_n = torch.zeros(10, dtype=torch.long)
    with torch.random.fork_rng(), ctx.bar("digit accuracy (WAV, speech judge)") as bar:
        torch.manual_seed(0)
        for idx in ctx.batches():
            raw = ctx.dataset.get_batch(idx)
            y = raw["y"].to(run.device)
            labels = run.model.y.digit_class(y).cpu()
            speakers = run.model.y.speaker_class(y).cpu() if with_speaker else None
            for kind in KINDS:
                if kind == "real":
                    audio = listener.waveforms(list(raw["x"]))
                else:
                    paths = []
                    for i, s, cond in zip(idx.tolist(), _speech(run, raw["x"], y, kind), run.model.y.to_user(y)):
                        name = f"{i:04d}_{cond['text']}" + (f"_{cond['speaker']}" if "speaker" in cond else "")
                        paths.append(s.save(folder / kind / f"{name}.wav"))  # what `cmmkit generate -o` writes
                    audio = listener.waveforms(paths)
                digit_logits, speaker_logits = listener.logits(audio.to(run.device))
                hit = digit_logits.argmax(-1).cpu() == labels
                correct[kind] += int(hit.sum())
                if speakers is not None and speaker_logits is not None:
                    speaker_correct[kind] += int((speaker_logits.argmax(-1).cpu() == speakers).sum())
                if kind == "generated":
                    per_digit.index_add_(0, labels, hit.long())
                    per_digit_n.index_add_(0, labels, torch.ones_like(labels))
            bar.update(len(idx))
    n = ctx.n
    acc = {k: v / n for k, v in correct.items()}
    out: dict[str, Any] = {
        "judge": str(judge.path), "judge_model": listener.name, "examples": n, "wav_folder": str(folder),
        **{f"accuracy_{k}": v for k, v in acc.items()},
        "per_digit_generated": {d: (int(c) / int(m) if m else None) for d, c, m in zip(digits, per_digit, per_digit_n)},
    }
    summary = {"digit acc. generated": acc["generated"], "digit acc. z sampled": acc["sampled_z"],
               "digit acc. sampled": acc["sampled"], "digit acc. real": acc["real"],
               "digit acc. vocoded": acc["vocoded"]}
    if with_speaker:
        sp = {k: v / n for k, v in speaker_correct.items()}
        out |= {f"speaker_accuracy_{k}": v for k, v in sp.items()}
        out["speaker_chance"] = 1 / len(listener.speakers)
        summary |= {"speaker acc. generated": sp["generated"], "speaker acc. z sampled": sp["sampled_z"],
                    "speaker acc. sampled": sp["sampled"]}
    out["summary"] = summary
    return out
