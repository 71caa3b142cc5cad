"""Time-normalised speech for ``pair.x.time_normalise``: every utterance stretched to one length.

Why: a decoder that is factorised given z, decoded at the prior mean, renders something close to the
conditional mean of its condition's recordings (``python -m cmmkit_fsdd.diagnose``: the judge scores
the training recordings' per-condition average about as it scores noise 0, and fails the same
digits and speakers). Recordings of one word differ in speaking rate, so in absolute time the mean
smears what is short and timed differently in each: the /s/ of "six" and "seven", the burst of
"two". Stretched to a common length first, the segments of a word line up better, and the
per-condition average is recognised more often (measured in docs/pairs/fsdd_digits_speech.md).

So with ``time_normalise`` the prepared value is the utterance's speech frames (up to the end of its
last non-silent sample) resampled to the full frame count, linearly for the spectrogram and log-F0
rows and by nearest neighbour for the voicing (which stays in {0, 1}, so its Bernoulli likelihood
stays exact), plus one more row holding the standardised log of the number of speech frames. The
decoder generates that length from z with a Gaussian, and ``to_user`` stretches the generated
frames back to it and pads the rest of the second with silence before vocoding.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from cmmkit_fsdd import wav

#: the shortest utterance, in frames, a length is clamped to (FSDD's shortest is ~22)
MIN_FRAMES = 8
#: samples with a magnitude at or below this are silence (two steps of 16-bit audio)
SILENCE = 2.0 / 32768
#: in users' recordings, sound this many dB below the loudest hop after the last louder one is silence
TRAILING_DB = 60.0


def _last_true(mask: torch.Tensor) -> torch.Tensor:
    """(B, n) bool -> (B,) long: the index of each row's last True, -1 where there is none."""
    index = torch.arange(mask.shape[1], device=mask.device)
    return torch.where(mask, index, -1).amax(1)


def speech_frames(waveforms: torch.Tensor, frames: int = wav.FRAMES) -> torch.Tensor:
    """(B, samples) -> (B,) long: frames up to and including the one centred past the last sample
    above :data:`SILENCE`, in [MIN_FRAMES, frames] (FSDD's recordings are trimmed, and the loader pads
    them with exact zeros)."""
    last = _last_true(waveforms.abs() > SILENCE).clamp_min(0)
    return (last // wav.HOP + 2).clamp(MIN_FRAMES, frames)


def trim_trailing_sound(waveforms: torch.Tensor, below_db: float = TRAILING_DB) -> tuple[torch.Tensor, torch.Tensor]:
    """Users' recordings, unlike FSDD's, need not end in exact digital silence: a noise floor, dither
    or a vocoder's decaying tail would make :func:`speech_frames` count the whole second as speech.
    So for users' inputs (never the training data, which the measured models were trained on),
    everything after the last hop whose RMS is within ``below_db`` dB of the loudest hop's is set to
    exact zeros. Returns (waveforms, (B,) seconds of sound removed)."""
    b, n = waveforms.shape[0], waveforms.shape[1] // wav.HOP
    rms = waveforms[:, : n * wav.HOP].reshape(b, n, wav.HOP).square().mean(-1).sqrt()
    end = (_last_true(rms > rms.amax(1, keepdim=True) * 10 ** (-below_db / 20)) + 1) * wav.HOP  # past the last loud hop
    keep = torch.arange(waveforms.shape[1], device=waveforms.device) < end.unsqueeze(1)
    last_cut = _last_true((waveforms.abs() > SILENCE) & ~keep)  # the last non-silent sample removed
    seconds = (last_cut + 1 - end).clamp_min(0).float() / wav.SAMPLE_RATE
    return torch.where(keep, waveforms, torch.zeros_like(waveforms)), seconds


def duration_statistics(waveforms: torch.Tensor) -> dict[str, float]:
    """Mean and standard deviation of the training recordings' log speech frames (kept in ``info``)."""
    log_frames = torch.log(speech_frames(waveforms).float())
    return {"log_frames_mean": float(log_frames.mean()), "log_frames_std": max(float(log_frames.std()), 1e-2)}


def _resample(row_block: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """(rows, n) -> (rows, size) along time."""
    if mode == "nearest":
        idx = torch.linspace(0, row_block.shape[-1] - 1, size, device=row_block.device).round().long()
        return row_block[:, idx]
    return F.interpolate(row_block.unsqueeze(0), size=size, mode="linear", align_corners=True)[0]


def to_common_length(x: torch.Tensor, lengths: torch.Tensor, nearest_rows: tuple[int, ...] = ()) -> torch.Tensor:
    """(B, rows, frames) in absolute time, each example's first ``lengths[i]`` frames stretched to all
    ``frames``; ``nearest_rows`` (the voicing) by nearest neighbour, the others linearly."""
    frames, out = x.shape[-1], torch.empty_like(x)
    linear = [r for r in range(x.shape[1]) if r not in nearest_rows]
    for i, n in enumerate(lengths.tolist()):
        out[i, linear] = _resample(x[i, linear, :n], frames, "linear")
        if nearest_rows:
            out[i, list(nearest_rows)] = _resample(x[i, list(nearest_rows), :n], frames, "nearest")
    return out


def to_lengths(x: torch.Tensor, lengths: torch.Tensor, silence: torch.Tensor,
               nearest_rows: tuple[int, ...] = ()) -> torch.Tensor:
    """The inverse of :func:`to_common_length`: (B, rows, frames) stretched back to ``lengths[i]``
    frames each, then padded with the ``silence`` column (rows,) to the full frame count."""
    out = silence.view(1, -1, 1).expand_as(x).clone()
    linear = [r for r in range(x.shape[1]) if r not in nearest_rows]
    for i, n in enumerate(lengths.tolist()):
        out[i, linear, :n] = _resample(x[i, linear], n, "linear")
        if nearest_rows:
            out[i, list(nearest_rows), :n] = _resample(x[i, list(nearest_rows)], n, "nearest")
    return out


def lengths_of(duration_row: torch.Tensor, mean: float, std: float, frames: int) -> torch.Tensor:
    """(B, frames) standardised log lengths (a generated row; its first column is read) -> (B,) frames."""
    log_n = torch.nan_to_num(duration_row[:, 0].detach().float() * std + mean, nan=mean)
    return torch.exp(log_n).round().clamp(MIN_FRAMES, frames).long()
