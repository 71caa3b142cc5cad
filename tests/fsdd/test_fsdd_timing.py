"""Time-normalised speech (:mod:`cmmkit_fsdd.timing`, ``pair.x.time_normalise``): lengths are found where
the speech ends, stretching to a common length and back keeps the utterance (and the voicing binary),
the length row's density is the length's alone, and a tiny run trains, generates silence after the
generated length, and reloads."""

from __future__ import annotations

import math

import pytest
import torch
from cmmkit_fsdd import timing, wav
from cmmkit_fsdd.pitch import PitchDensity

from cmmkit.api import ConfigError, DiagonalGaussian


def _tone(seconds: float) -> torch.Tensor:
    t = torch.arange(int(seconds * wav.SAMPLE_RATE)) / wav.SAMPLE_RATE
    return wav.fix_length(0.3 * torch.sin(2 * math.pi * 200 * t))


def test_speech_frames_end_after_the_last_loud_sample():
    waves = torch.stack([_tone(0.4), _tone(0.25), torch.zeros(wav.NUM_SAMPLES), _tone(1.0)])
    waves[1, 2000:2010] = 1e-5  # below two 16-bit steps: silence
    n = timing.speech_frames(waves)
    assert n.tolist() == [(3200 - 1) // wav.HOP + 2, (2000 - 1) // wav.HOP + 2, timing.MIN_FRAMES, wav.FRAMES]


def test_a_users_noise_floor_is_not_counted_as_speech(tmp_path, caplog):
    """FSDD's recordings end in exact zeros; a user's may end in dither or a noise floor, which would
    make the whole second count as speech. Users' inputs to a time-normalised run are trimmed after
    their last hop within 60 dB of the loudest; a zero-padded recording is left exactly as it is."""
    from fsdd_fixtures import train_tiny

    clean = torch.stack([_tone(0.4), _tone(0.25)])
    dithered = clean + torch.randint(-3, 4, clean.shape) / 32768
    assert timing.speech_frames(dithered).tolist() == [wav.FRAMES, wav.FRAMES]  # the problem
    trimmed, removed = timing.trim_trailing_sound(dithered)
    assert (timing.speech_frames(trimmed) - timing.speech_frames(clean)).abs().max() <= 1
    assert removed.tolist() == pytest.approx([0.6, 0.75], abs=0.02)
    same, none = timing.trim_trailing_sound(clean)
    assert torch.equal(same, clean) and none.tolist() == [0.0, 0.0]

    run, _, _ = train_tiny(tmp_path, ["pair.x.vocoder=source_filter", "pair.x.pitch_channels=4",
                                      "pair.x.time_normalise=true"], name="tn")
    rows, frames = run.x.shape
    assert run.x.dims == (rows - 1) * frames + 1  # bits per dimension: the length row is one value
    path = wav.write_wav(tmp_path / "noisy.wav", dithered[0])
    with caplog.at_level("INFO"):
        raw = run.x.from_user([path, clean[1]])
    assert (timing.speech_frames(raw) - timing.speech_frames(clean)).abs().max() <= 1
    assert "noisy.wav: 0.6" in caplog.text and "taken as silence" in caplog.text


def test_stretching_to_a_common_length_and_back_keeps_the_utterance():
    torch.manual_seed(0)
    frames, lengths = wav.FRAMES, torch.tensor([30, 77, wav.FRAMES])
    t = torch.linspace(0, 1, frames)
    x = torch.stack([torch.stack([torch.sin(6 * t * k), torch.cos(3 * t * k), (torch.sin(20 * t * k) > 0).float()])
                     for k in (1.0, 1.5, 2.0)])  # (3 examples, rows: smooth, smooth, voicing)
    silence = torch.tensor([-9.0, 0.0, 0.0])
    for i, n in enumerate(lengths.tolist()):
        x[i, :, n:] = silence.view(-1, 1)
    common = timing.to_common_length(x, lengths, nearest_rows=(2,))
    assert set(common[:, 2].unique().tolist()) <= {0.0, 1.0}  # the voicing stays binary
    assert (common[0, 0] > -2).all()  # the 30 speech frames fill all 126: no silence left in them
    back = timing.to_lengths(common, lengths, silence, nearest_rows=(2,))
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(back[i, :2, :n], x[i, :2, :n], atol=0.02, rtol=0)
        assert (back[i, 2, :n] == x[i, 2, :n]).float().mean() > 0.9
        assert torch.equal(back[i, :, n:], silence.view(-1, 1).expand(-1, frames - n))
    standardised = ((torch.log(lengths.float()) - 4.0) / 0.3).view(-1, 1).expand(-1, frames)
    assert torch.equal(timing.lengths_of(standardised, 4.0, 0.3, frames), lengths)


def test_the_length_row_is_one_variable():
    """Its density is the length's, read once: the copies along the row add nothing."""
    b, frames = 2, 10
    dist = PitchDensity(torch.zeros(b, frames), torch.zeros(b, frames), torch.zeros(b, frames),
                        DiagonalGaussian(torch.zeros(b, 1), torch.zeros(b, 1), event_dims=1))
    x = torch.zeros(b, 3, frames)
    x[:, 2] = 0.5
    base = dist.log_prob(x)
    no_length = PitchDensity(dist.mu, dist.logvar, dist.logits).log_prob(x[:, :2])
    torch.testing.assert_close(base - no_length, torch.full((b,), -0.5 * (0.25 + math.log(2 * math.pi))))
    x2 = x.clone()
    x2[:, 2, 1:] = 3.0
    torch.testing.assert_close(dist.log_prob(x2), base)
    sample = dist.rsample(1.0)
    assert sample.shape == (b, 3, frames) and (sample[:, 2] == sample[:, 2, :1]).all()


def test_time_normalise_needs_the_pitched_modality():
    from cmmkit.config import build_config

    with pytest.raises(ConfigError, match="time_normalise"):
        build_config("fsdd_digits_speech", sets=["pair.x.time_normalise=true", "pair.x.vocoder=griffin_lim"])


def test_tiny_time_normalised_cmma_trains_generates_silence_after_its_length_and_reloads(tmp_path):
    from fsdd_fixtures import train_tiny, val_bound

    from cmmkit.api import load_run

    run, data, out = train_tiny(tmp_path, ["pair.x.vocoder=source_filter", "pair.x.pitch_channels=4",
                                           "pair.x.time_normalise=true"], name="tn")
    x_mod = run.x
    assert x_mod.shape[0] == x_mod.mels + 3 and "log_frames_mean" in x_mod.info
    prepared = x_mod.prepare(data.splits["val"].get_batch(torch.arange(3))["x"])
    assert (prepared[:, -1] == prepared[:, -1, :1]).all()  # the length row is constant
    back = x_mod.absolute_time(prepared)
    assert back.shape == (3, x_mod.mels + 2, wav.FRAMES)
    for speech in out:
        assert speech.waveform.shape == (wav.NUM_SAMPLES,)
        n = int(torch.nonzero(speech.waveform.abs() > 1e-3).max()) // wav.HOP + 1
        assert n < wav.FRAMES - 2  # the vocoded silence after the generated length
        assert speech.log_mel.shape == (x_mod.mels, wav.FRAMES)
    torch.manual_seed(0)
    bound = val_bound(run, data)
    assert torch.isfinite(bound).all()
    again = load_run(run.path)
    assert again.x.info["log_frames_std"] == x_mod.info["log_frames_std"]
    torch.manual_seed(0)
    torch.testing.assert_close(val_bound(again, data), bound)


def test_diagnose_reads_a_time_normalised_run(tmp_path):
    from cmmkit_fsdd.diagnose import diagnose
    from fsdd_fixtures import train_tiny

    run, data, _ = train_tiny(tmp_path, ["pair.x.vocoder=source_filter", "pair.x.pitch_channels=4",
                                         "pair.x.time_normalise=true"], name="tn")

    class Listener:  # always hears "zero"
        def logits(self, audio):
            return torch.eye(10)[[0] * len(audio)], torch.eye(3)[[0] * len(audio)]

    report = diagnose(run, Listener(), data, split="val")
    share = float((run.y.digit_class(data.splits["val"].y) == 0).float().mean())
    assert report["posterior mean, noise 1 on F0 only"][0] == pytest.approx(share)
    assert report["posterior mean, noise 1 on the length only"][0] == pytest.approx(share)
    assert "time-normalised frames" in report["posterior decode: F0 and voicing figures above are over"]
    assert report["training recordings' average per condition, time-normalised"][0] == pytest.approx(share)


def test_the_source_filter_probe_refuses_a_pitched_run(tmp_path):
    """The probe voices a plain spectrogram at the recording's F0; a pitched (here also time-normalised)
    run's x is not that, so it says which tool answers the question instead of printing wrong figures."""
    from cmmkit_fsdd import source_filter
    from fsdd_fixtures import train_tiny

    run, _, _ = train_tiny(tmp_path, ["pair.x.vocoder=source_filter", "pair.x.pitch_channels=4",
                                      "pair.x.time_normalise=true"], name="tn")
    with pytest.raises(SystemExit, match="runs without the pitch"):
        source_filter.check_run(run)


def test_laplace_log_f0_has_the_asked_variance_and_a_bounded_pull_on_the_mean():
    """pair.x.pitch_likelihood=laplace: the same variance as the Gaussian, exp(logvar) = 2 b^2, and an
    octave jump pulls the mean with gradient at most 1/b per frame instead of growing with the jump."""
    from cmmkit_fsdd.temporal import Laplace

    b, frames = 2, 12
    mu = torch.zeros(b, frames, requires_grad=True)
    logvar = torch.full((b, frames), -3.0)
    x = torch.zeros(b, 2, frames)
    x[:, 0, 5] = 2.4  # the tracker's octave jump, in standardised log-F0 (log 2 / 0.29)
    grads = {}
    for kind in ("gaussian", "laplace"):
        dist = PitchDensity(mu, logvar, torch.zeros(b, frames), likelihood=kind)
        assert isinstance(dist.log_f0, Laplace if kind == "laplace" else DiagonalGaussian)
        torch.testing.assert_close(dist.log_f0.std, torch.exp(0.5 * logvar))
        (g,) = torch.autograd.grad(dist.log_prob(x).sum(), mu)
        grads[kind] = g[0, 5].abs().item()
    assert grads["laplace"] == pytest.approx(1 / math.sqrt(math.exp(-3.0) / 2), rel=1e-5)
    assert grads["gaussian"] == pytest.approx(2.4 / math.exp(-3.0), rel=1e-5) and grads["gaussian"] > 3 * grads["laplace"]
