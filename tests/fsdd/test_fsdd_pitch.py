"""Pitch (:mod:`cmmkit_fsdd.pitch`, ``pair.x.vocoder=source_filter``): the F0 tracker finds a voice's pitch
and leaves silence unvoiced, the smoothing defines log-F0 at every frame, the synthesis voices an
envelope at the F0 it is given, and the pitched modality's likelihood is the exact sum of its parts."""

from __future__ import annotations

import math

import pytest
import torch
from cmmkit_fsdd import wav
from cmmkit_fsdd.audio import LogMelModality, LogMelOptions, Speech
from cmmkit_fsdd.pitch import (
    PitchDensity,
    SourceFilterDecoder,
    pitch_statistics,
    pitch_track,
    smooth_pitch,
    synthesise,
)

from cmmkit.api import DataError


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
        assert out.shape == (1, wav.NUM_SAMPLES) and out.abs().max() <= 0.99 + 1e-6
        f0, v = pitch_track(out)
        assert v[0, 5:55].float().mean() > 0.9
        assert (f0[0, 5:55] - pitch).abs().median() < 0.05 * pitch  # the pitch it was given, not the source's
        # the envelope is kept: loud where the source is loud, silent after it
        energy = analysis(out)[0].exp().sum(0)
        assert energy[5:55].mean() > 100 * energy[80:].mean()


def test_synthesis_keeps_the_envelopes_level():
    """A quiet utterance stays quiet (a per-utterance peak normalisation would blow up a quiet edit
    and the noise floor with it); only peaks above 0.99 are scaled down."""
    analysis = wav.MelAnalysis()
    loud = _voice(150.0)
    _, voiced = pitch_track(loud[None])
    f0 = torch.full_like(voiced, 150.0)
    out_loud, out_quiet = (synthesise(analysis(s[None]), f0, voiced, analysis)[0] for s in (loud, 0.1 * loud))
    rms = [float(o[:4000].square().mean().sqrt()) for o in (out_loud, out_quiet)]
    assert 8 < rms[0] / rms[1] < 12.5
    assert 0.3 < rms[0] / float(loud[:4000].square().mean().sqrt()) < 3  # about the source's own level
    assert out_loud.abs().max() <= 0.99 + 1e-6


def test_smoothing_fills_unvoiced_frames_and_drops_isolated_flips():
    f0 = torch.tensor([[100.0, 100.0, 300.0, 100.0, 100.0, 999.0, 999.0, 200.0, 200.0, 999.0, 200.0, 200.0]])
    voiced = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0]])  # frame 9: a tracker error
    log_f0, v = smooth_pitch(f0, voiced)
    assert v.tolist() == [[1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1]]
    hz = log_f0.exp()[0]
    assert (hz[:4] - 100).abs().max() < 1e-3  # the one-frame octave jump (300 Hz) is gone
    assert 100 < hz[4] <= hz[5] < hz[6] < 200  # unvoiced frames: interpolated in log F0, not the tracker's 999
    assert (hz[7:] - 200).abs().max() < 1e-3  # the flipped frame's 999 is outvoted by the median
    silent, none = smooth_pitch(torch.full((1, 6), 80.0), torch.zeros(1, 6), fallback=120.0)
    assert not none.any() and torch.allclose(silent.exp(), torch.full((1, 6), 120.0))



def test_smoothing_interpolates_as_numpy_interp_does():
    import numpy as np
    from cmmkit_fsdd.pitch import _median

    gen = torch.Generator().manual_seed(0)
    f0 = 80 + 200 * torch.rand(8, 40, generator=gen)
    voiced = (torch.rand(8, 40, generator=gen) > 0.4).float()
    log_f0, v = smooth_pitch(f0, voiced)
    frames = np.arange(40)
    for i in range(8):
        mask = (v[i] > 0.5).numpy()
        ref = np.interp(frames, frames[mask], f0[i].log().numpy()[mask])
        torch.testing.assert_close(log_f0[i : i + 1], _median(torch.tensor(ref, dtype=torch.float32)[None], 5))


MELS, FRAMES = 64, 126
INFO = {"mels": MELS, "frames": FRAMES, "sample_rate": 8000, "num_samples": 8000,
        "mean": [0.0] * MELS, "std": [1.0] * MELS, "log_f0_mean": math.log(150.0), "log_f0_std": 0.3}


def _pitched(**opts) -> LogMelModality:
    return LogMelModality(LogMelOptions(vocoder="source_filter", base_channels=4, pitch_channels=8, **opts), INFO)


def test_pitched_modality_prepares_mel_and_pitch_rows_and_voices_them():
    mod = _pitched()
    source = torch.stack([_voice(120.0), _voice(200.0)])
    x = mod.prepare(source)
    assert x.shape == (2, MELS + 2, FRAMES) and mod.dims == (MELS + 2) * FRAMES
    torch.testing.assert_close(mod.unnormalise(x), mod.analysis(source))  # the mel rows are the plain analysis
    f0, voiced = mod.pitch_of(x)
    assert (f0[0, 5:55] - 120).abs().max() < 6 and (f0[1, 5:55] - 200).abs().max() < 10
    assert voiced[:, 5:55].all() and not voiced[:, 75:].any()
    assert (x[0, MELS, 5:55] - (math.log(120.0) - math.log(150.0)) / 0.3).abs().max() < 0.2  # standardised
    speech = mod.to_user(x)
    assert isinstance(speech[0], Speech) and speech[0].f0 is not None and speech[0].waveform.shape == (8000,)
    heard, _ = pitch_track(torch.stack([s.waveform for s in speech]))
    assert (heard[1, 5:55] - 200).median().abs() < 10  # the vocoder speaks at the prepared pitch
    with pytest.raises(DataError, match="waveforms"):
        mod.prepare(mod.analysis(source))  # a spectrogram has no pitch track


def test_pitched_log_prob_is_the_spectrogram_term_plus_gaussian_log_f0_plus_bernoulli_voicing():
    mod = _pitched(likelihood="laplace", logvar_floor=-6.0, logvar_ceiling=-4.0)
    torch.manual_seed(0)
    dec = mod.decoder(8).eval()
    assert isinstance(dec, SourceFilterDecoder)
    h, x = torch.randn(3, 8), mod.prepare(torch.stack([_voice(110.0), _voice(180.0), _voice(240.0, 0.3)]))
    lp = dec.log_prob(h, x)
    assert lp.shape == (3,)
    pitch = dec.pitch(h)
    assert isinstance(pitch, PitchDensity)
    by_hand = torch.distributions.Normal(pitch.mu, (0.5 * pitch.logvar).exp()).log_prob(x[:, MELS]).sum(-1)
    by_hand += torch.distributions.Bernoulli(logits=pitch.logits).log_prob(x[:, MELS + 1]).sum(-1)
    torch.testing.assert_close(lp, dec.spectrogram.log_prob(h, x[:, :MELS]) + by_hand)
    torch.testing.assert_close(dec(h).log_prob(x), lp)
    mean = dec.generate(h, 0.0)
    assert mean.shape == x.shape
    torch.testing.assert_close(mean[:, MELS + 1], torch.sigmoid(pitch.logits))  # noise 0: voicing probability
    torch.manual_seed(1)
    drawn = dec.generate(h, 1.0)
    assert set(drawn[:, MELS + 1].unique().tolist()) <= {0.0, 1.0}  # noise 1: voicing drawn
    assert not torch.equal(drawn[:, MELS], mean[:, MELS])


def test_pitch_statistics_are_those_of_the_voiced_frames():
    stats = pitch_statistics(torch.stack([_voice(100.0), _voice(200.0)]))
    assert abs(stats["log_f0_mean"] - 0.5 * (math.log(100.0) + math.log(200.0))) < 0.05
    assert abs(stats["log_f0_std"] - 0.5 * math.log(2.0)) < 0.05


def test_tiny_pitched_cmma_trains_generates_reloads_and_diagnoses(tmp_path):
    from cmmkit_fsdd.diagnose import diagnose
    from fsdd_fixtures import train_tiny, val_bound

    from cmmkit.api import load_run

    run, data, out = train_tiny(tmp_path, ["pair.x.vocoder=source_filter", "pair.x.pitch_channels=4"], name="sf")
    assert len(out) == 2 and out[0].waveform.shape == (8000,) and out[0].log_mel.shape == (MELS, FRAMES)
    assert out[0].f0 is not None and ((out[0].f0 >= 60) & (out[0].f0 <= 400)).all()
    assert list((run.path / "samples").glob("*.png"))  # the preview draws the vocoded generations
    torch.manual_seed(0)
    bound = val_bound(run, data)
    assert bound.shape == (4,) and torch.isfinite(bound).all()
    torch.manual_seed(0)
    again = load_run(run.path)  # the log-F0 statistics travel in the checkpoint's info
    assert again.x.info["log_f0_std"] == run.x.info["log_f0_std"] and again.x.pitched
    torch.manual_seed(0)
    torch.testing.assert_close(val_bound(again, data), bound)

    class Listener:  # a stand-in judge that always hears "zero" from the first speaker
        def logits(self, audio):
            return torch.eye(10)[[0] * len(audio)], torch.eye(3)[[0] * len(audio)]

    report = diagnose(run, Listener(), data, split="val")
    assert report["decoder std in speech bins"] > 0
    assert 0.0 <= report["posterior decode: voicing agreement"] <= 1.0
    for part in ("F0 only", "the voicing only"):  # the pitch's noise taken apart
        assert 0.0 <= report[f"posterior mean, noise 1 on {part}"][0] <= 1.0
    # noise 0 in context: the conditions it gets wrong, and the training average of each condition
    digits = run.y.digit_class(data.splits["val"].y)
    wrong = report["prior mean: wrong conditions (digit, speaker -> judged)"].split(", ")
    words = run.y.info["digits"]
    assert {item.split("/")[0] for item in wrong} == {words[d] for d in digits[digits != 0].tolist()}
    assert all(item.endswith("->zero") and item.split("/")[1].split("->")[0] in run.y.info["speakers"] for item in wrong)
    for name in ("absolute time", "time-normalised"):
        assert report[f"training recordings' average per condition, {name}"][0] == pytest.approx(
            float((digits == 0).float().mean()))


def test_pitched_encoder_starts_as_the_spectrogram_encoder_and_reads_the_pitch_once_trained():
    from cmmkit_fsdd.pitch import SourceFilterEncoder

    torch.manual_seed(0)
    enc = _pitched().encoder(16)
    assert isinstance(enc, SourceFilterEncoder)
    x = torch.randn(3, MELS + 2, FRAMES)
    torch.testing.assert_close(enc(x), enc.spectrogram(x[:, :MELS]))  # the pitch branch starts at zero
    torch.nn.init.normal_(enc.pitch[-1].weight)
    moved = x.clone()
    moved[:, MELS] += 1.0
    assert not torch.allclose(enc(moved), enc(x))  # then the log-F0 row changes the features
