"""Would modelling the pitch help? A source-filter vocoder probe for speech runs.

    python -m cmmkit_fsdd.source_filter RUN --judge JUDGE [--split test]

Every factorised decoder measured renders the low mel bands smooth: the harmonics, stripes a few
bands apart that follow the pitch, are averaged away (``cmmkit_fsdd.diagnose``: the recording's
lowest 20 bands under a decode restore the digit). Statistical parametric speech synthesis met the
same averaging and answered it by modelling a smooth spectral envelope and the pitch (F0) apart, and
letting the vocoder draw the harmonics. This probe measures what that would buy before building it:
it voices log-mel spectrograms with a harmonic-plus-noise excitation at a given F0, shaped by the
spectrogram as an envelope, and scores the WAVs with the speech judge, beside Griffin-Lim on the
same spectrograms:

- real recordings, and real recordings blurred over 5 mel bands (an envelope without harmonics);
- the run's posterior decodes (a recording's own z) and prior-mean decodes (noise 0), voiced with
  the recording's own F0 (what a model that generated F0 as well as the recording has it could reach)
  and with a constant F0 (the speaker's median: a monotone voice).

The F0 tracker is a plain normalised autocorrelation per analysis frame (60-400 Hz: the shortest lag
whose peak is within 10% of the highest; voiced where that peak exceeds 0.5 and the frame is within 30
dB of the loudest). It is a probe, not cmmkit's vocoder.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

from cmmkit_fsdd import wav
from cmmkit_fsdd.diagnose import judge_audio, load_probe, print_report

F0_MIN, F0_MAX = 60.0, 400.0
HARMONICS = 40


def pitch_track(waveforms: torch.Tensor, rate: int = wav.SAMPLE_RATE) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, samples) -> F0 in Hz and voicing in {0, 1}, each (B, FRAMES), at the analysis frames
    (centred windows of N_FFT samples every HOP, as :class:`cmmkit_fsdd.wav.MelAnalysis`)."""
    n = wav.N_FFT
    frames = F.pad(waveforms, (n // 2, n // 2)).unfold(-1, n, wav.HOP)[:, : wav.FRAMES]
    frames = frames - frames.mean(-1, keepdim=True)
    power = torch.fft.rfft(frames, n=2 * n).abs().square()
    ac = torch.fft.irfft(power, n=2 * n)[..., :n]
    overlap = (n - torch.arange(n, dtype=ac.dtype)) / n  # a lag-l product has n - l terms
    ac = ac / ac[..., :1].clamp_min(1e-9) / overlap
    lo, hi = int(rate / F0_MAX), int(rate / F0_MIN)
    band = ac[..., lo - 1 : hi + 1]
    inner = band[..., 1:-1]
    peak = inner.amax(-1, keepdim=True)
    # the shortest lag whose local maximum is within 10% of the highest: a plain argmax would often pick
    # two periods (an octave too low), whose correlation is as high
    local = (inner >= band[..., :-2]) & (inner >= band[..., 2:]) & (inner >= 0.9 * peak)
    lag = local.to(ac.dtype).argmax(-1)  # the first True
    peak = peak.squeeze(-1)
    energy = frames.square().mean(-1)
    voiced = (peak > 0.5) & (energy > energy.amax(-1, keepdim=True) * 1e-3)
    return rate / (lag + lo).to(ac.dtype), voiced.to(ac.dtype)


def synthesise(log_mel: torch.Tensor, f0: torch.Tensor, voiced: torch.Tensor, analysis: wav.MelAnalysis,
               rate: int = wav.SAMPLE_RATE, seed: int = 0) -> torch.Tensor:
    """(B, mels, frames) natural-log mel power, F0 and voicing (B, frames) -> (B, samples) waveforms.

    The excitation is a sum of equal-amplitude harmonics of F0 below Nyquist (voiced) or white noise
    (unvoiced), cross-faded by the voicing; its STFT is flattened per frame and multiplied by the
    envelope's magnitude (the least-squares inverse of the mel filterbank), then inverted."""
    frames = log_mel.shape[-1]
    samples = frames * wav.HOP  # the excitation covers every frame; the output is cut to NUM_SAMPLES
    linear = analysis.linear_power(log_mel).clamp_min(1e-10)  # (B, n_fft/2+1, frames)
    f0s = F.interpolate(f0.unsqueeze(1), size=samples, mode="linear", align_corners=False)[:, 0]
    vs = F.interpolate(voiced.unsqueeze(1), size=samples, mode="linear", align_corners=False)[:, 0]
    phase = 2 * math.pi * torch.cumsum(f0s / rate, -1)
    k = torch.arange(1, HARMONICS + 1, dtype=phase.dtype).view(1, -1, 1)
    below = (k * f0s.unsqueeze(1) < rate / 2).to(phase.dtype)
    harmonic = (torch.cos(k * phase.unsqueeze(1)) * below).sum(1) / below.sum(1).clamp_min(1).sqrt()
    noise = torch.randn(harmonic.shape, generator=torch.Generator().manual_seed(seed))
    excitation = vs * harmonic + (1 - vs) * noise
    window = torch.hann_window(wav.N_FFT)
    spec = torch.stft(excitation, wav.N_FFT, wav.HOP, window=window, return_complex=True)[..., :frames]
    flat = spec / spec.abs().square().mean(1, keepdim=True).sqrt().clamp_min(1e-10)
    out = torch.istft(flat * linear.sqrt(), wav.N_FFT, wav.HOP, window=window, length=wav.NUM_SAMPLES)
    return 0.9 * out / out.abs().amax(-1, keepdim=True).clamp_min(1e-6)


@torch.no_grad()
def probe(run: Any, listener: Any, data: Any, split: str = "test") -> dict[str, tuple[float, float]]:
    """(digit, speaker) accuracy of each rendering listed in the module docstring."""
    torch.manual_seed(0)
    model, x_mod = run.model.eval(), run.x
    part = data.splits[split]
    waveforms, y = part.x, part.y
    analysis = x_mod.analysis
    f0, voiced = pitch_track(waveforms)
    real = analysis(waveforms)
    blur = F.avg_pool2d(real.unsqueeze(1), (5, 1), stride=1, padding=(2, 0), count_include_pad=False).squeeze(1)
    prepared = x_mod.prepare(waveforms)
    q, p = model.posterior(prepared, y), model.prior(y)
    posterior = x_mod.unnormalise(model.decoder.generate(q.mu, 0.0))
    prior = x_mod.unnormalise(model.decoder.generate(p.mu, 0.0))
    median = torch.stack([f0[i][voiced[i] > 0].median() if voiced[i].any() else f0.new_tensor(120.0)
                          for i in range(len(f0))])
    spk = run.y.speaker_class(y) if run.y.with_speaker else torch.zeros(len(y), dtype=torch.long)
    monotone = torch.stack([median[spk == s].median() for s in spk]).unsqueeze(1).expand_as(f0)

    def gl(log_mel: torch.Tensor) -> torch.Tensor:
        return analysis.invert(log_mel, x_mod.options.griffin_lim_iterations)

    def sf(log_mel: torch.Tensor, pitch: torch.Tensor = f0) -> torch.Tensor:
        return synthesise(log_mel, pitch, voiced, analysis)

    renderings = {
        "real, Griffin-Lim": gl(real), "real, source-filter (own F0)": sf(real),
        "real blurred over 5 bands, Griffin-Lim": gl(blur), "real blurred over 5 bands, source-filter (own F0)": sf(blur),
        "posterior decode, Griffin-Lim": gl(posterior),
        "posterior decode, source-filter (the recording's F0)": sf(posterior),
        "posterior decode, source-filter (the speaker's median F0)": sf(posterior, monotone),
        "prior mean decode, Griffin-Lim": gl(prior),
        "prior mean decode, source-filter (the recording's F0)": sf(prior),
    }
    return {name: judge_audio(run, listener, audio, y) for name, audio in renderings.items()}


def main(argv: list[str] | None = None) -> int:
    run, listener, data, split = load_probe(__doc__.split("\n\n")[0], argv)
    print_report(probe(run, listener, data, split))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
