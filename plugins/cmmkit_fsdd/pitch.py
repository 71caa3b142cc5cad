"""Pitch for the ``log_mel`` modality: an F0 tracker, a harmonic-plus-noise vocoder, and the networks
and density of ``pair.x.vocoder=source_filter``.

Why: every factorised spectrogram decoder measured renders the lowest mel bands smooth. The
harmonics there (stripes a few bands apart that follow the pitch) move from one utterance to the
next, so their per-bin median is a blur, and Griffin-Lim turns a blur into speech the judge
recognises about 0.79 of the time (docs/pairs/fsdd_digits_speech.md, fourth round). Statistical
parametric speech synthesis met the same averaging and answered it by modelling a smooth spectral
envelope and the pitch apart and letting the vocoder draw the harmonics. With
``vocoder=source_filter`` the modality does that:

- **x** is the log-mel spectrogram (the envelope; unchanged, so its bound term is comparable to
  the Griffin-Lim modality's) plus two rows per frame: the log-F0 standardised with the training
  mean and standard deviation, and the voicing in {0, 1}. F0 comes from :func:`pitch_track` (a
  normalised autocorrelation per analysis frame), smoothed by :func:`smooth_pitch` (a 3-frame
  median on the voicing, log-F0 interpolated through unvoiced frames and held at the ends, then a
  5-frame median) so that it is defined at every frame;
- **p(x | z)** = p(mel | z) p(log-F0 | z) p(voicing | z): the spectrogram decoder as configured,
  and :class:`PitchHead`, 1-D transposed convolutions over time from z to a Gaussian over each
  frame's log-F0 and a Bernoulli over its voicing (:class:`PitchDensity`). The likelihood is exact,
  so the bound stays a bound (of a mixed continuous-discrete x);
- **q(z | x, y)** reads both: :class:`SourceFilterEncoder` adds a 1-D conv branch over the two
  pitch rows to the spectrogram encoder;
- **audio** (``to_user``): :func:`synthesise` voices the envelope with harmonics of the generated F0
  where the generated voicing says voiced, and with noise elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from cmmkit.api import Decoder, DiagonalGaussian
from cmmkit_fsdd import wav
from cmmkit_fsdd.frames import bounded_logvar
from cmmkit_fsdd.spectrogram import PADDED as _PADDED
from cmmkit_fsdd.spectrogram import act as _act
from cmmkit_fsdd.temporal import Laplace, per_bin_density

F0_MIN, F0_MAX = 60.0, 400.0
HARMONICS = 40
#: rows of x after the mel bands: standardised log-F0, voicing (and with time_normalise a third, the
#: standardised log speech length, constant along the row: cmmkit_fsdd.timing)
PITCH_ROWS = 2


def pitch_track(waveforms: torch.Tensor, rate: int = wav.SAMPLE_RATE) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, samples) -> F0 in Hz and voicing in {0, 1}, each (B, FRAMES), at the analysis frames
    (centred windows of N_FFT samples every HOP, as :class:`cmmkit_fsdd.wav.MelAnalysis`).

    A plain normalised autocorrelation per frame (60-400 Hz): the shortest lag whose local peak is
    within 10% of the highest; voiced where that peak exceeds 0.5 and the frame is within 30 dB of
    the loudest."""
    n = wav.N_FFT
    waveforms = wav.fix_length(waveforms.float())
    frames = F.pad(waveforms, (n // 2, n // 2)).unfold(-1, n, wav.HOP)[:, : wav.FRAMES]
    frames = frames - frames.mean(-1, keepdim=True)
    power = torch.fft.rfft(frames, n=2 * n).abs().square()
    ac = torch.fft.irfft(power, n=2 * n)[..., :n]
    overlap = (n - torch.arange(n, dtype=ac.dtype, device=ac.device)) / n  # a lag-l product has n - l terms
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


def _median(x: torch.Tensor, width: int) -> torch.Tensor:
    """A running median over the last dimension (edges replicated)."""
    pad = width // 2
    return F.pad(x.unsqueeze(1), (pad, pad), mode="replicate").squeeze(1).unfold(-1, width, 1).median(-1).values


def smooth_pitch(f0: torch.Tensor, voiced: torch.Tensor, fallback: float = 120.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A tracker's (F0 in Hz, voicing), each (B, frames) -> (log-F0 defined at every frame, voicing).

    Voicing: a 3-frame median (an isolated flip is a tracker error, not speech). Log-F0: the voiced
    frames' values, linearly interpolated through unvoiced frames and held at the ends (``fallback``
    Hz for an utterance without a voiced frame), then a 5-frame median (octave jumps of one or two
    frames). A density over a track defined everywhere needs no mask, and what the vocoder reads at
    an unvoiced frame does not matter."""
    v = _median(voiced.float(), 3)
    log_f0 = torch.log(f0.float().clamp(F0_MIN, F0_MAX))
    frames = torch.arange(log_f0.shape[-1], device=f0.device).expand_as(log_f0)
    on = v > 0.5
    # the nearest voiced frame at or before / at or after each frame (-1 / T where there is none)
    before = torch.where(on, frames, -1).cummax(-1).values
    after = torch.where(on, frames, log_f0.shape[-1]).flip(-1).cummin(-1).values.flip(-1)
    lo = before.clamp(min=0)
    hi = after.clamp(max=log_f0.shape[-1] - 1)
    left, right = log_f0.gather(-1, lo), log_f0.gather(-1, hi)
    left = torch.where(before < 0, right, left)  # before the first voiced frame: hold its value
    right = torch.where(after >= log_f0.shape[-1], left, right)  # after the last: hold
    span = (after - before).clamp(min=1).float()
    weight = torch.where((before >= 0) & (after < log_f0.shape[-1]), (frames - before).float() / span,
                         torch.zeros_like(span))
    filled = left + weight * (right - left)
    filled = torch.where(on.any(-1, keepdim=True), filled, torch.full_like(filled, math.log(fallback)))
    return _median(filled, 5), v


def pitch_statistics(waveforms: torch.Tensor) -> dict[str, float]:
    """The mean and standard deviation of log-F0 (natural log of Hz) over the voiced frames of
    training waveforms (B, samples): how ``vocoder=source_filter`` standardises its log-F0 row."""
    f0, voiced = pitch_track(waveforms)
    log_f0 = torch.log(f0[voiced > 0])
    if len(log_f0) < 2:
        return {"log_f0_mean": math.log(120.0), "log_f0_std": 1.0}
    return {"log_f0_mean": float(log_f0.mean()), "log_f0_std": max(float(log_f0.std()), 1e-2)}


def synthesise(log_mel: torch.Tensor, f0: torch.Tensor, voiced: torch.Tensor, analysis: wav.MelAnalysis,
               rate: int = wav.SAMPLE_RATE, seed: int = 0) -> torch.Tensor:
    """(B, mels, frames) natural-log mel power, F0 in Hz and voicing in [0, 1] (B, frames) -> (B,
    samples) waveforms at the envelope's level, peaks limited to 0.99.

    The excitation is a sum of equal-amplitude harmonics of F0 below Nyquist (voiced) or white noise
    (unvoiced), cross-faded by the voicing; its STFT is flattened per frame and multiplied by the
    envelope's magnitude (the least-squares inverse of the mel filterbank), then inverted."""
    log_mel, f0, voiced = log_mel.detach().cpu().float(), f0.detach().cpu().float(), voiced.detach().cpu().float()
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
    # the envelope sets the level (a quiet utterance stays quiet); peaks above 0.99 are scaled down, as
    # Griffin-Lim's output is
    peak = out.abs().amax(-1, keepdim=True).clamp_min(1e-8)
    return torch.where(peak > 0.99, out / peak * 0.99, out)


def _conv_stack(channels_in: int, channels: int) -> list[nn.Module]:
    """Three stride-2 1-D convolutions: 128 frames -> 16 positions."""
    mods: list[nn.Module] = []
    for i in range(3):
        mods += [nn.Conv1d(channels_in if i == 0 else channels, channels, 4, 2, 1), _act()]
    return mods


class SourceFilterEncoder(nn.Module):
    """(B, mels + 2, frames) -> (B, out_features): the spectrogram encoder's features of the mel rows
    plus a 1-D conv branch's linear read of the pitch rows. The branch's last layer starts at zero,
    so training starts from the spectrogram encoder alone (a first version mixed both through one
    more dense layer and trained 1,000-2,000 nats behind the plain modality at every epoch)."""

    def __init__(self, spectrogram: nn.Module, mels: int, out_features: int, channels: int,
                 rows: int = PITCH_ROWS) -> None:
        super().__init__()
        self.spectrogram, self.mels = spectrogram, mels
        self.pitch = nn.Sequential(*_conv_stack(rows, channels), nn.Flatten(),
                                   nn.Linear(channels * _PADDED // 8, out_features))
        nn.init.zeros_(self.pitch[-1].weight)
        nn.init.zeros_(self.pitch[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pitch = F.pad(x[:, self.mels :], (0, _PADDED - x.shape[-1]))
        return self.spectrogram(x[:, : self.mels]) + self.pitch(pitch)


@dataclass(eq=False)
class PitchDensity:
    """A Gaussian over each frame's standardised log-F0 (``mu``, ``logvar``) and a Bernoulli over its
    voicing (``logits``), all (B, frames); x is (B, 2, frames). With ``duration`` (a Gaussian over
    (B, 1), time-normalised speech) x has a third row, the standardised log speech length repeated
    along it: its density is that of the length, read from the first column (the rest of the row
    is a copy, a deterministic function of it). ``log_prob`` is per example."""

    mu: torch.Tensor
    logvar: torch.Tensor
    logits: torch.Tensor
    duration: DiagonalGaussian | None = None
    #: the log-F0 density per frame: "gaussian", or "laplace" (same variance, exp(logvar) = 2 b^2),
    #: whose gradient in the mean stays bounded where the tracker jumps an octave
    likelihood: str = "gaussian"

    @property
    def log_f0(self) -> DiagonalGaussian | Laplace:
        return per_bin_density(self.mu, self.logvar, self.likelihood, event_dims=1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        bern = -F.binary_cross_entropy_with_logits(self.logits.float(), x[:, 1].float(), reduction="none").sum(-1)
        lp = self.log_f0.log_prob(x[:, 0]) + bern
        return lp if self.duration is None else lp + self.duration.log_prob(x[:, 2, :1])

    def rsample(self, noise_scale: float = 1.0) -> torch.Tensor:
        """(B, 2, frames). Noise 0: the F0 mean and the voicing probability (the vocoder cross-fades
        harmonics and noise by it); otherwise F0 with ``noise_scale`` of its standard deviation and a
        Bernoulli draw of the voicing."""
        p = torch.sigmoid(self.logits)
        log_f0 = self.log_f0.rsample(noise_scale)  # drawn before the voicing
        rows = [log_f0, p if noise_scale == 0.0 else torch.bernoulli(p.detach())]
        if self.duration is not None:  # drawn last: the stream of the rows above is unchanged
            rows.append(self.duration.rsample(noise_scale).expand_as(log_f0))
        return torch.stack(rows, dim=1)


class PitchHead(nn.Module):
    """z features (B, D) -> :class:`PitchDensity` over ``frames`` frames: a dense map to 16 positions,
    three stride-2 1-D transposed convolutions to 128 frames, a 3-tap conv to (mean, log-variance,
    voicing logit) per frame."""

    def __init__(self, in_features: int, frames: int, channels: int, logvar_floor: float,
                 duration: bool = False, likelihood: str = "gaussian") -> None:
        super().__init__()
        self.frames, self.channels, self.floor, self.likelihood = frames, channels, logvar_floor, likelihood
        self.fc = nn.Sequential(nn.Linear(in_features, channels * _PADDED // 8), _act())
        mods: list[nn.Module] = []
        for _ in range(3):
            mods += [nn.ConvTranspose1d(channels, channels, 4, 2, 1), _act()]
        self.up = nn.Sequential(*mods, nn.Conv1d(channels, 3, 3, 1, 1))
        #: time-normalised speech: (mean, log-variance) of the standardised log length from the same features
        self.duration = nn.Linear(channels * _PADDED // 8, 2) if duration else None

    def forward(self, h: torch.Tensor) -> PitchDensity:
        features = self.fc(h)
        out = self.up(features.view(len(h), self.channels, _PADDED // 8))[..., : self.frames]
        duration = None
        if self.duration is not None:
            d = self.duration(features)
            duration = DiagonalGaussian(d[:, :1], bounded_logvar(d[:, 1:], self.floor, None), event_dims=1)
        return PitchDensity(out[:, 0], bounded_logvar(out[:, 1], self.floor, None), out[:, 2], duration,
                            self.likelihood)


@dataclass(eq=False)
class SourceFilterDensity:
    """p(mel | z) p(pitch | z) over x = (B, mels + 2, frames): ``spectrogram`` any per-example density
    over the mel rows, ``pitch`` a :class:`PitchDensity` over the last two."""

    spectrogram: object
    pitch: PitchDensity
    mels: int

    @property
    def mean(self) -> torch.Tensor:
        return torch.cat([self.spectrogram.mean, self.pitch.rsample(0.0)], dim=1)  # type: ignore[attr-defined]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.spectrogram.log_prob(x[:, : self.mels]) + self.pitch.log_prob(x[:, self.mels :])  # type: ignore[attr-defined]

    def rsample(self, noise_scale: float = 1.0) -> torch.Tensor:
        return torch.cat([self.spectrogram.rsample(noise_scale), self.pitch.rsample(noise_scale)], dim=1)  # type: ignore[attr-defined]


class SourceFilterDecoder(Decoder):
    """The spectrogram decoder (any of the modality's) for the mel rows beside a :class:`PitchHead`
    for the pitch rows, both reading the same code. ``log_prob`` and ``generate`` defer to the
    spectrogram decoder's own (teacher forcing and step-by-step generation for autoregressive ones)."""

    def __init__(self, spectrogram: Decoder, in_features: int, mels: int, frames: int, channels: int,
                 logvar_floor: float, duration: bool = False, likelihood: str = "gaussian") -> None:
        super().__init__()
        self.spectrogram, self.mels = spectrogram, mels
        self.pitch = PitchHead(in_features, frames, channels, logvar_floor, duration, likelihood)

    def forward(self, h: torch.Tensor) -> SourceFilterDensity:
        return SourceFilterDensity(self.spectrogram(h), self.pitch(h), self.mels)

    def log_prob(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.spectrogram.log_prob(h, x[:, : self.mels]) + self.pitch(h).log_prob(x[:, self.mels :])

    def generate(self, h: torch.Tensor, noise_scale: float = 0.0) -> torch.Tensor:
        return torch.cat([self.spectrogram.generate(h, noise_scale), self.pitch(h).rsample(noise_scale)], dim=1)
