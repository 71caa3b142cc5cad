"""Where a speech run loses the digit: the speech judge on decodes from the posterior and the prior.

    python -m cmmkit_fsdd.diagnose RUN --judge JUDGE [--split test]

For every example of the split (test by default) it judges, as ``cmmkit evaluate`` does (cmmkit's
vocoder, 16-bit samples, the speech judge):

- ``posterior mean, decoder mean``: the recording's own z (the mean of q(z | x, y)) decoded at the
  decoder's mean: how much of the digit the decoder can render at all (a ceiling for noise 0);
- ``posterior mean, decoder noise 1``: the same z with the decoder's per-bin noise: what that noise
  alone costs (the gap between noise 0 and noise 1 that z does not cause);
- ``prior mean`` / ``prior sample`` / ``prior sample at 0.5``: z from p(z | y) (noise 0, 1 and 0.5),
  decoder mean;

- ``recording's bands 0-19, posterior decode above`` and the reverse: the posterior decode with its
  lowest 20 mel bands swapped for the recording's (or only those kept): which part of the spectrum
  loses the digit;

then the prior-posterior mismatch: the KL, the mean standard deviations of q and p, the
second moment of the test posteriors in the prior's units (E[(mu_q - mu_p)^2 / var_p + var_q /
var_p], 1 when p(z | y) has the spread of the posteriors of its condition), the active latent
dimensions, and how far a prior sample lies from the nearest training posterior mean of its
condition compared with a test recording's posterior mean (in the prior's standard deviations):
a prior sample much farther away than a real recording is off the data the decoder was trained on.
Also the decoder's standard deviation and the residual of its mean in speech bins (normalised units), and
for a pitched run (``pair.x.vocoder=source_filter``): the posterior decode voiced at the recording's own
F0 and voicing (is the generated pitch the loss?), the decoder's noise on the spectrogram alone, on
the pitch alone and on F0 and voicing apart (which costs noise 1?), and the decode's F0 error
(median cents, and the share of octave errors) and voicing agreement against the recording's.

Two references put noise 0 in context. A prior-mean decode depends on the condition only, so noise 0
judges one utterance per (digit, speaker): the report lists the conditions it gets wrong. And it
judges the **training recordings' average per condition** (what a decoder that rendered the
conditional mean exactly would produce), in absolute time and with each recording first stretched
to a common length (then back to the condition's median length): the score a mean-seeking decoder
can reach at noise 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from cmmkit_fsdd import timing, wav
from cmmkit_fsdd.pitch import synthesise

LOW_BANDS = 20  # mel bands 0-19: 0-~700 Hz, where a 100-250 Hz voice's harmonics are resolved


def judge_audio(run: Any, listener: Any, audio: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(digit, speaker) accuracy of the speech judge on waveforms (B, samples), first rounded to 16-bit
    samples as a WAV file stores them (speaker nan when y has no speaker)."""
    digit_logits, speaker_logits = listener.logits(wav.as_16_bit(audio))
    digit = float((digit_logits.argmax(-1) == run.y.digit_class(y)).float().mean())
    speaker = float((speaker_logits.argmax(-1) == run.y.speaker_class(y)).float().mean()) if speaker_logits is not None \
        and run.y.with_speaker else float("nan")
    return digit, speaker


def _judge(run: Any, listener: Any, prepared: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """:func:`judge_audio` of prepared spectrograms through cmmkit's vocoder, as ``cmmkit evaluate``."""
    return judge_audio(run, listener, torch.stack([s.waveform for s in run.x.to_user(prepared)]), y)


@torch.no_grad()
def diagnose(run: Any, listener: Any, data: Any, split: str = "test", seed: int = 0) -> dict[str, Any]:
    """The measures listed in the module docstring, as a dict (accuracies are (digit, speaker))."""
    torch.manual_seed(seed)
    model, x_mod = run.model, run.x
    model.eval()
    part, train = data.splits[split], data.splits["train"]
    x, y = x_mod.prepare(part.x), part.y
    q, p = model.posterior(x, y), model.prior(y)
    dec = model.decoder
    recon = dec.generate(q.mu, 0.0)  # noise 0 draws nothing: the random stream below is unchanged
    out: dict[str, Any] = {
        "posterior mean, decoder mean": _judge(run, listener, recon, y),
        "posterior mean, decoder noise 1": _judge(run, listener, dec.generate(q.mu, 1.0), y),
        "prior mean, decoder mean": _judge(run, listener, dec.generate(p.mu, 0.0), y),
        "prior sample, decoder mean": _judge(run, listener, dec.generate(p.rsample(1.0), 0.0), y),
        "prior sample at 0.5, decoder mean": _judge(run, listener, dec.generate(p.rsample(0.5), 0.0), y),
    }
    # which bands lose it: the posterior decode with its lowest LOW_BANDS bands (harmonics, first
    # formant) taken from the recording, and the other way round
    low = torch.arange(x.shape[1]).view(1, -1, 1) < LOW_BANDS  # pitch rows (when modelled): the decode's
    bands = f"bands 0-{LOW_BANDS - 1}"
    out[f"recording's {bands}, posterior decode above"] = _judge(run, listener, torch.where(low, x, recon), y)
    out[f"posterior decode's {bands}, recording above"] = _judge(run, listener, torch.where(low, recon, x), y)
    # an autoregressive decoder's per-bin densities are those of teacher forcing on the recording; a
    # pitched modality's spectrogram decoder is the one that draws the mel bins
    spec, mel = getattr(dec, "spectrogram", dec), x[:, : x_mod.mels]
    dist = spec.distribution(q.mu, mel) if hasattr(spec, "distribution") else spec(q.mu)
    if not isinstance(dist, tuple):  # the frame decoder's (mu, logvar) per step: no per-bin statistics
        std = dist.std
        speech = x_mod.unnormalise(x) > -6.0  # bins well above digital silence (-11.5)
        out["decoder std in speech bins"] = float(std[speech].mean())
        out["decoder std elsewhere"] = float(std[~speech].mean())
        out["residual rms in speech bins"] = float((dist.mean - mel)[speech].square().mean().sqrt())
    if hasattr(dec, "pitch"):  # the pitch rows: how well the decode's F0 and voicing follow the recording's
        mels, pitch = x_mod.mels, dec.pitch(q.mu)
        length = recon[:, mels + 2 :]  # the decoded length row of time-normalised speech (else empty)
        # the recording's F0 and voicing under the decode's own length, so that only the pitch changes
        out["posterior decode, the recording's F0 and voicing"] = _judge(
            run, listener, torch.cat([recon[:, :mels], x[:, mels : mels + 2], length], 1), y)
        out["posterior mean, noise 1 on the spectrogram only"] = _judge(
            run, listener, torch.cat([dec.spectrogram.generate(q.mu, 1.0), recon[:, mels:]], 1), y)
        out["posterior mean, noise 1 on F0 and voicing only"] = _judge(
            run, listener, torch.cat([recon[:, :mels], pitch.rsample(1.0)[:, :2], length], 1), y)
        if length.shape[1]:
            out["posterior mean, noise 1 on the length only"] = _judge(
                run, listener, torch.cat([recon[:, : mels + 2], pitch.rsample(1.0)[:, 2:]], 1), y)
        p_voiced = torch.sigmoid(pitch.logits)
        out["posterior mean, noise 1 on F0 only"] = _judge(run, listener, torch.cat(
            [recon[:, :mels], torch.stack([pitch.log_f0.rsample(1.0), p_voiced], 1), length], 1), y)
        out["posterior mean, noise 1 on the voicing only"] = _judge(run, listener, torch.cat(
            [recon[:, :mels], torch.stack([pitch.mu, torch.bernoulli(p_voiced)], 1), length], 1), y)
        f0, voiced = x_mod.pitch_of(x)
        f0_decoded, voiced_decoded = x_mod.pitch_of(recon)
        both = (voiced > 0.5) & (voiced_decoded > 0.5)
        cents = (1200 * torch.log2(f0_decoded / f0))[both].abs()
        out["posterior decode: F0 error in voiced frames (cents, median)"] = float(cents.median())
        out["posterior decode: voiced frames off by more than 600 cents (octave errors)"] = float((cents > 600).float().mean())
        out["posterior decode: voicing agreement"] = float(((voiced > 0.5) == (voiced_decoded > 0.5)).float().mean())
        if length.shape[1]:  # so these three compare frames of stretched speech, no silent padding
            out["posterior decode: F0 and voicing figures above are over"] = (
                "time-normalised frames (stretched speech, no silence): not comparable with an absolute-time run's")
    prior_mean = dec.generate(p.mu, 0.0)
    audio = torch.stack([s.waveform for s in x_mod.to_user(prior_mean)])
    judged = listener.logits(wav.as_16_bit(audio))[0].argmax(-1)
    digit = run.y.digit_class(y)
    speaker = run.y.speaker_class(y) if run.y.with_speaker else torch.zeros_like(digit)
    wrong = sorted({(int(d), int(s), int(j)) for d, s, j in zip(digit, speaker, judged) if d != j})
    digits, speakers = run.y.info.get("digits", []), run.y.info.get("speakers", [])

    def name(names: list[str], i: int) -> str:
        return names[i] if i < len(names) else str(i)

    out["prior mean: wrong conditions (digit, speaker -> judged)"] = ", ".join(
        f"{name(digits, d)}/{name(speakers, s) if run.y.with_speaker else '-'}->{name(digits, j)}" for d, s, j in wrong)
    if run.y.with_speaker:
        out.update(condition_averages(run, listener, data, split))
    out["kl"] = float(q.kl(p).mean())
    out["q std"], out["p std"] = float(q.std.mean()), float(p.std.mean())
    out["posterior second moment / prior variance"] = float((((q.mu - p.mu) / p.std) ** 2).mean()
                                                            + (q.std / p.std).square().mean())
    spread = ((q.mu - p.mu) ** 2 / p.std**2).mean(0)
    out["active dims"] = f"{int((spread > 0.1).sum())} of {spread.numel()}"
    q_train = model.posterior(x_mod.prepare(train.x), train.y)
    key_train, key = train.y[:, 0] * 1000 + train.y[:, -1], y[:, 0] * 1000 + y[:, -1]
    z = p.rsample(1.0)
    from_prior, from_real = [], []
    for i in range(len(y)):
        mus, s = q_train.mu[key_train == key[i]], p.std[i]
        if len(mus):
            from_prior.append((((mus - z[i]) / s) ** 2).sum(1).min().sqrt())
            from_real.append((((mus - q.mu[i]) / s) ** 2).sum(1).min().sqrt())
    out["nearest train posterior mean from a prior sample"] = float(torch.stack(from_prior).mean())
    out["nearest train posterior mean from a test posterior mean"] = float(torch.stack(from_real).mean())
    return out


def condition_averages(run: Any, listener: Any, data: Any, split: str = "test") -> dict[str, Any]:
    """The judge on the training recordings' average per (digit, speaker) condition, one per example
    of ``split`` (see the module docstring): in absolute time and time-normalised."""
    x_mod, train, part = run.x, data.splits["train"], data.splits[split]
    x = x_mod.prepare_absolute(train.x)  # absolute time, whatever the run's time_normalise
    frames = x.shape[-1]
    length = timing.speech_frames(train.x, frames)
    silence = x_mod.silent_frame
    stretched = timing.to_common_length(x, length)
    key = lambda y: run.y.digit_class(y) * 1000 + run.y.speaker_class(y)
    train_key, keys = key(train.y), key(part.y)
    absolute, normalised = {}, {}
    for k in keys.unique().tolist():
        m = train_key == k
        if not m.any():
            continue
        absolute[k] = x[m].mean(0)
        n = length[m].float().median().long().view(1)
        normalised[k] = timing.to_lengths(stretched[m].mean(0, keepdim=True), n, silence)[0]
    have = torch.tensor([k in absolute for k in keys.tolist()], dtype=torch.bool)
    y = part.y[have]
    out = {}
    for name, table in (("absolute time", absolute), ("time-normalised", normalised)):
        values = torch.stack([table[k] for k in keys[have].tolist()])
        if x_mod.pitched:  # vocoded directly: to_user would read a time-normalised run's values as such
            f0, voiced = x_mod.pitch_of(values)
            audio = synthesise(x_mod.unnormalise(values), f0, voiced, x_mod.analysis)
            out[f"training recordings' average per condition, {name}"] = judge_audio(run, listener, audio, y)
        else:
            out[f"training recordings' average per condition, {name}"] = _judge(run, listener, values, y)
    return out


def load_probe(description: str, argv: list[str] | None = None) -> tuple[Any, Any, Any, str]:
    """The command line shared by this module and :mod:`cmmkit_fsdd.source_filter`: RUN --judge J
    [--split S] [--data-dir D] -> (run, the judge's listener, the run's data, split)."""
    from cmmkit.api import load_data, load_judge, load_run

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("run", type=Path)
    parser.add_argument("--judge", type=Path, required=True, help="a speech_judge run (cmmkit train-judge)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args(argv)
    run = load_run(args.run)
    listener = load_judge(args.judge, run).model
    return run, listener, load_data(run.config, data_dir=args.data_dir, progress=False), args.split


def print_report(report: dict[str, Any]) -> None:
    """One line per measure; (digit, speaker) accuracies and floats to three decimals."""
    for name, value in report.items():
        if isinstance(value, tuple):
            value = f"digit {value[0]:.3f}, speaker {value[1]:.3f}"
        elif isinstance(value, float):
            value = f"{value:.3f}"
        print(f"{name}: {value}")


def main(argv: list[str] | None = None) -> int:
    run, listener, data, split = load_probe(__doc__.split("\n\n")[0], argv)
    print_report(diagnose(run, listener, data, split))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
