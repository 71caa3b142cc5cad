"""The source-filter probe (:mod:`cmmkit_fsdd.source_filter`): its F0 tracker finds a voice's pitch and
leaves silence unvoiced, and its synthesis voices an envelope at the F0 it is given."""

from __future__ import annotations

import math

import torch
from cmmkit_fsdd import wav
from cmmkit_fsdd.source_filter import pitch_track, synthesise


def _voice(f0: float, seconds: float = 0.5) -> torch.Tensor:
    """A 1 s waveform: ``seconds`` of a 10-harmonic tone at ``f0`` with a falling spectrum, then silence."""
    t = torch.arange(int(seconds * wav.SAMPLE_RATE)) / wav.SAMPLE_RATE
    tone = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 11))
    return wav.fix_length(0.3 * tone / tone.abs().max())


def test_pitch_track_finds_the_pitch_and_the_silence():
    f0, voiced = pitch_track(torch.stack([_voice(120.0), _voice(210.0)]))
    assert f0.shape == voiced.shape == (2, wav.FRAMES)
    middle = slice(5, 55)  # frames well inside the 0.5 s tone (hop 8 ms)
    assert voiced[:, middle].all() and not voiced[:, 75:].any()
    assert (f0[0, middle] - 120).abs().max() < 6 and (f0[1, middle] - 210).abs().max() < 10


def test_synthesis_voices_the_envelope_at_the_given_pitch():
    analysis = wav.MelAnalysis()
    source = torch.stack([_voice(120.0)])
    log_mel = analysis(source)
    _, voiced = pitch_track(source)
    for pitch in (110.0, 180.0):
        out = synthesise(log_mel, torch.full_like(voiced, pitch), voiced, analysis)
        assert out.shape == (1, wav.NUM_SAMPLES) and out.abs().max() <= 0.9 + 1e-6
        f0, v = pitch_track(out)
        assert v[0, 5:55].float().mean() > 0.9
        assert (f0[0, 5:55] - pitch).abs().median() < 0.05 * pitch  # the pitch it was given, not the source's
        # the envelope is kept: loud where the source is loud, silent after it
        energy = analysis(out)[0].exp().sum(0)
        assert energy[5:55].mean() > 100 * energy[80:].mean()
