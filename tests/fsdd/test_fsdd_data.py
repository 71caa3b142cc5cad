"""fsdd_digits_speech data: layouts, split, WAV errors, offline behaviour, the digit_text modality."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
import torch
from cmmkit_fsdd import wav
from cmmkit_fsdd.pair import FSDDConfig
from fsdd_fixtures import make_fsdd, make_release_zip, tone, write_wav

from cmmkit.errors import DataError
from cmmkit.registry import get_registry


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("fsdd")
    make_fsdd(path, indices=range(0, 12), digits=range(3))
    return path


def load(folder, **kw):
    pair = get_registry().pair("fsdd_digits_speech")
    return pair.load(FSDDConfig(**kw), folder, download=False, progress=False)


def test_split_by_index_and_info(folder):
    data = load(folder)
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sizes == {"train": 3 * 2 * 2, "val": 3 * 2 * 5, "test": 3 * 2 * 5}
    x, y = data.splits["train"].x, data.splits["train"].y
    assert x.shape[1:] == (wav.NUM_SAMPLES,) and y.shape[1] == 2  # raw x: 1 s waveforms
    pair = get_registry().pair("fsdd_digits_speech")
    x_mod, _ = pair.modalities(FSDDConfig(), data.info)
    mel = x_mod.prepare(x)  # the log_mel modality analyses them
    assert mel.shape[1:] == (wav.N_MELS, wav.FRAMES) == (64, 126)
    assert torch.allclose(mel, x_mod.prepare(wav.MelAnalysis()(x)), atol=1e-5)  # raw log-mel accepted too
    assert data.info["y"]["speakers"] == ["jackson", "theo"] and len(data.info["x"]["mean"]) == 64
    assert "tokenizer" in data.info["y"]
    assert load(folder, condition_on_speaker=False).splits["val"].y.shape[1] == 1


def test_extracted_zip_folder_and_zip_in_place(tmp_path, folder):
    make_release_zip(tmp_path / "z", folder / "recordings")
    zipped = load(tmp_path / "z")
    nested = tmp_path / "n" / "free-spoken-digit-dataset-1.0.10"
    nested.mkdir(parents=True)
    (nested / "recordings").symlink_to(folder / "recordings")
    for data in (zipped, load(tmp_path / "n")):
        assert torch.equal(data.splits["test"].x, load(folder).splits["test"].x)


@pytest.mark.parametrize("kind,message", [("rate", "sample rate 16000 Hz"), ("stereo", "2 channels"),
                                          ("width", "8-bit"), ("corrupt", "not a readable WAV"),
                                          ("truncated", "truncated")])
def test_bad_wav_named(tmp_path, folder, kind, message):
    rec = make_fsdd(tmp_path, indices=range(0, 11), digits=range(1))
    bad = rec / "0_jackson_3.wav"
    if kind == "rate":
        write_wav(bad, tone(0, 0, 3), rate=16000)
    elif kind == "stereo":
        write_wav(bad, tone(0, 0, 3) * 2, channels=2)
    elif kind == "width":
        write_wav(bad, bytes(800), width=1)
    elif kind == "corrupt":
        bad.write_bytes(b"RIFX" + bytes(40))
    else:
        bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(DataError, match=message) as err:
        load(tmp_path)
    assert "0_jackson_3.wav" in str(err.value)


def test_missing_data_offline_says_what_to_download(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="v1.0.10.zip"):
        load(tmp_path)  # a user folder without recordings
    def offline(*a, **k):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    pair = get_registry().pair("fsdd_digits_speech")
    with pytest.raises(DataError, match="download .*v1.0.10.zip"):
        pair.load(FSDDConfig(), None, download=True, progress=False)  # cache folder, download fails


def test_digit_text_from_user(folder):
    data = load(folder)
    pair = get_registry().pair("fsdd_digits_speech")
    _, y = pair.modalities(FSDDConfig(), data.info)
    ids = y.from_user([{"text": "seven", "speaker": "jackson"}, {"text": "7", "speaker": "Theo"}, {"text": "Two", "speaker": "theo"}])
    assert y.to_user(ids) == [{"text": "seven", "speaker": "jackson"}, {"text": "seven", "speaker": "theo"},
                              {"text": "two", "speaker": "theo"}]
    assert y.digit_class(ids).tolist() == [7, 7, 2]
    with pytest.raises(DataError, match="Did you mean 'seven'"):
        y.from_user([{"text": "sevn", "speaker": "jackson"}])
    with pytest.raises(DataError, match="Did you mean 'jackson'"):
        y.from_user([{"text": "one", "speaker": "jakson"}])
    with pytest.raises(DataError, match="give one"):
        y.from_user(["one"])
    with pytest.raises(DataError, match="single word"):
        y.from_user([{"text": "one two", "speaker": "theo"}])
    dec = y.decoder(4)
    lp = dec.log_prob(torch.zeros(3, 4), ids)
    assert lp.shape == (3,) and torch.all(lp < 0)
    assert dec.generate(torch.zeros(3, 4)).shape == (3, 2)


def test_wav_round_trip(tmp_path):
    samples = torch.sin(torch.arange(4000) * 0.3) * 0.5
    back = wav.read_wav(wav.write_wav(tmp_path / "a.wav", samples))
    assert torch.allclose(back, samples, atol=1e-4)


def test_real_mirror(fsdd_mirror):
    data = load(fsdd_mirror)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 2400, "val": 300, "test": 300}
    assert len(data.info["y"]["speakers"]) == 6


def test_download_release_zip_into_cache_and_verify(tmp_path, folder, monkeypatch):
    import io

    payload = make_release_zip(tmp_path / "served", folder / "recordings").read_bytes()
    calls = []

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

    def serve(request, timeout=None):
        calls.append(request.full_url)
        return Response(payload)

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    pair = get_registry().pair("fsdd_digits_speech")
    data = pair.load(FSDDConfig(), None, download=True, progress=False)  # $CMMKIT_CACHE/fsdd
    assert calls == ["https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip"]
    assert len(data.splits["test"]) == 30
    pair.load(FSDDConfig(), None, download=True, progress=False)
    assert len(calls) == 1  # cached, not downloaded again
    from cmmkit.data.download import cache_root

    cached = cache_root() / "fsdd" / "free-spoken-digit-dataset-1.0.10.zip"
    cached.write_bytes(cached.read_bytes()[:-10])
    with pytest.raises(DataError, match="fails verification"):
        pair.load(FSDDConfig(), None, download=True, progress=False)
