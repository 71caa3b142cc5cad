"""The speech judge: its own analysis, augmentation, refusals of other audio, the WAV path, and the
judge comparison script."""

from __future__ import annotations

import pytest
import torch
from cmmkit_fsdd import compare_judges, wav
from cmmkit_fsdd.audio import Speech
from cmmkit_fsdd.listener import AugmentOptions, ListenerAnalysis, SpeechJudge, augment
from fsdd_fixtures import make_fsdd, tone, write_wav

from cmmkit.config import build_config
from cmmkit.errors import DataError
from cmmkit.runs import train


def _tone(digit: int = 3) -> torch.Tensor:
    return torch.frombuffer(bytearray(tone(digit, 0, 0)), dtype=torch.int16).float() / 32768


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("fsdd")
    make_fsdd(path, indices=range(0, 16), digits=range(10))
    return path


@pytest.fixture(scope="module")
def judge(folder, tmp_path_factory):
    cfg = build_config("fsdd_digits_speech", preset="tiny", model="speech_judge",
                       sets=[f"data.data_dir={folder}", "train.epochs=6", "model.channels=8", "model.hidden=32"])
    return train(cfg, tmp_path_factory.mktemp("judge") / "judge", progress=False)


def test_analysis_is_its_own_and_ignores_gain():
    analysis = ListenerAnalysis()
    x = wav.fix_length(_tone()).unsqueeze(0)
    feats = analysis(x)
    assert feats.shape == (1, 40, 101) != (1, wav.N_MELS, wav.FRAMES)  # not the model's analysis
    assert abs(float(feats.mean())) < 1e-4 and abs(float(feats.std()) - 1) < 1e-3  # per utterance
    assert torch.allclose(analysis(0.05 * x), feats, atol=1e-3)  # gain does not reach the classifier


def test_augmentation_gain_shift_noise():
    x = wav.fix_length(_tone()).unsqueeze(0).repeat(4, 1)
    g = torch.Generator().manual_seed(0)
    quiet = augment(x, AugmentOptions(gain_db=(-20.0, -20.0), shift_s=(0.0, 0.0), noise_probability=0.0), g)
    assert torch.allclose(quiet, x * 0.1, atol=1e-6)
    shifted = augment(x, AugmentOptions(gain_db=(0.0, 0.0), shift_s=(0.1, 0.1), noise_probability=0.0), g)
    assert torch.all(shifted[:, :800] == 0) and torch.allclose(shifted[:, 800:], x[:, :-800])  # leading silence
    cut = augment(x, AugmentOptions(gain_db=(0.0, 0.0), shift_s=(-0.01, -0.01), noise_probability=0.0), g)
    assert torch.allclose(cut[:, :-80], x[:, 80:]) and torch.all(cut[:, -80:] == 0)
    noisy = augment(x, AugmentOptions(gain_db=(0.0, 0.0), shift_s=(0.0, 0.0), noise_probability=1.0,
                                      snr_db=(20.0, 20.0)), g)
    snr = 10 * torch.log10(x.pow(2).mean() / (noisy - x).pow(2).mean())
    assert 19.0 < float(snr) < 21.0
    varied = augment(x, AugmentOptions(), g)  # defaults: each example drawn independently, length kept
    assert varied.shape == x.shape and varied.abs().max() <= 1 and not torch.allclose(varied[0], varied[1])


def test_refuses_other_rates_and_channels(tmp_path):
    with pytest.raises(DataError, match="speech judge.*16000 Hz; expected 8000 Hz"):
        SpeechJudge.waveforms([write_wav(tmp_path / "a.wav", tone(1, 0, 0), rate=16000)])
    with pytest.raises(DataError, match="speech judge.*2 channels"):
        SpeechJudge.waveforms([write_wav(tmp_path / "b.wav", tone(1, 0, 0) * 2, channels=2)])
    with pytest.raises(DataError, match="mono"):
        SpeechJudge.waveforms([torch.zeros(2, 8000)])
    with pytest.raises(DataError, match="16000 Hz"):
        SpeechJudge.waveforms([Speech(torch.zeros(8000), torch.zeros(64, 126), sample_rate=16000)])
    ok = SpeechJudge.waveforms([write_wav(tmp_path / "c.wav", tone(1, 0, 0)), torch.zeros(1, 100),
                                Speech(torch.zeros(9000), torch.zeros(64, 126))])
    assert ok.shape == (3, 8000)


def test_judge_trained_on_real_recordings_scores_wavs(judge, folder, tmp_path):
    assert not judge.model.can_generate and judge.model.speakers == ["jackson", "theo"]
    files = [folder / "recordings" / f"{d}_jackson_{i}.wav" for d in range(10) for i in range(3)]
    pred = judge.model.predict(files)
    digit_acc = sum(p["text"] == compare_judges.DIGITS[d] for p, d in zip(pred, [d for d in range(10) for _ in range(3)]))
    assert digit_acc >= 20  # tones per digit: easy once trained; far above chance (3 of 30)
    assert all(p["speaker"] in ("jackson", "theo") for p in pred)
    with pytest.raises(DataError, match="speech judge"):
        judge.model.predict([write_wav(tmp_path / "x.wav", tone(1, 0, 0), rate=11025)])
    result = compare_judges.score(judge, files)
    assert result["files"] == 30 and result["digit_accuracy"] == digit_acc / 30 and "speaker_accuracy" in result


def test_file_names_give_labels(tmp_path):
    assert compare_judges.labels_of(tmp_path / "0012_seven_theo.wav") == (7, "theo")
    assert compare_judges.labels_of(tmp_path / "0012_seven.wav") == (7, None)
    assert compare_judges.labels_of(tmp_path / "3_Jackson_12.wav") == (3, "jackson")
    assert compare_judges.labels_of(tmp_path / "noise.wav") is None
