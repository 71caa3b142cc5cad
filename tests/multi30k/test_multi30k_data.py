"""Loading Multi30k in its official format, and the errors of bad input."""

from __future__ import annotations

import json

import pytest
from m30k_fixtures import make_multi30k, write

from cmmkit.config import build_config
from cmmkit.errors import DataError
from cmmkit.runs import load_data

PAIR = "multi30k_en_de"


def _config(folder, *sets):
    return build_config(PAIR, preset="tiny", sets=[f"data.data_dir={folder}", *sets])


def test_loads_official_layout(tmp_path):
    sents = make_multi30k(tmp_path / "m30k")
    data = load_data(_config(tmp_path / "m30k"), progress=False)
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [80, 12, 10]
    test = data.splits["test"]
    assert test.target_texts == sents["test_2016_flickr"]["de"] and test.source_texts == sents["test_2016_flickr"]["en"]
    batch = test.get_batch(__import__("torch").arange(3))
    assert set(batch["x"]) == {"ids", "mask", "tokenizer"} and batch["x"]["ids"].shape[1] == int(batch["x"]["mask"].sum(1).max())
    assert data.info["x"]["language"] == "de" and json.loads(data.info["x"]["tokenizer"])["model"]["type"] == "BPE"
    assert data.info["x"]["mean_length"] > 3


def test_french_target(tmp_path):
    sents = make_multi30k(tmp_path / "m30k")
    data = load_data(_config(tmp_path / "m30k", "pair.target=fr"), progress=False)
    assert data.splits["val"].target_texts == sents["val"]["fr"] and data.info["x"]["language"] == "fr"


def test_line_count_mismatch_names_both_files_and_counts(tmp_path):
    sents = make_multi30k(tmp_path / "m30k")
    write(tmp_path / "m30k", "val.de.gz", sents["val"]["de"][:-2])
    with pytest.raises(DataError, match=r"val\.en\.gz has 12 lines but .*val\.de\.gz has 10"):
        load_data(_config(tmp_path / "m30k"), progress=False)


def test_empty_train_line_is_skipped_with_note_but_empty_test_line_is_an_error(tmp_path, capsys):
    sents = make_multi30k(tmp_path / "m30k")
    de = list(sents["train"]["de"])
    de[4] = ""
    write(tmp_path / "m30k", "train.de.gz", de)
    data = load_data(_config(tmp_path / "m30k"), progress=False)
    assert len(data.splits["train"]) == 79
    assert "train.de.gz:5 (empty)" in capsys.readouterr().err
    en = list(sents["test_2016_flickr"]["en"])
    en[2] = "  "
    write(tmp_path / "m30k", "test_2016_flickr.en.gz", en)
    with pytest.raises(DataError, match=r"test_2016_flickr\.en\.gz:3: empty line"):
        load_data(_config(tmp_path / "m30k"), progress=False)


def test_overlong_sentences(tmp_path, capsys):
    sents = make_multi30k(tmp_path / "m30k")
    long = "A man " + "runs and " * 30 + "sits."
    en = list(sents["train"]["en"])
    en[9] = long
    write(tmp_path / "m30k", "train.en.gz", en)
    data = load_data(_config(tmp_path / "m30k", "pair.max_length=40"), progress=False)
    assert len(data.splits["train"]) == 79 and "train.en.gz:10 (" in capsys.readouterr().err
    en = list(sents["val"]["en"])
    en[0] = long
    write(tmp_path / "m30k", "val.en.gz", en)
    with pytest.raises(DataError, match=r"val\.en\.gz:1 \(\d+ tokens\): longer than pair.max_length=40"):
        load_data(_config(tmp_path / "m30k", "pair.max_length=40"), progress=False)


def test_missing_file_in_user_copy_names_it_and_the_url(tmp_path):
    make_multi30k(tmp_path / "m30k")
    (tmp_path / "m30k" / "val.de.gz").unlink()
    with pytest.raises(DataError, match=r"val\.de\.gz is missing .*raw\.githubusercontent\.com/multi30k/dataset/"):
        load_data(_config(tmp_path / "m30k"), progress=False)


def test_offline_without_data_says_what_to_download_and_where(monkeypatch):
    import urllib.request

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    cfg = build_config(PAIR, preset="tiny")
    with pytest.raises(DataError, match=r"could not download train\.en\.gz from https://raw\.githubusercontent\.com/"
                                        r"multi30k/dataset/master/data/task1/raw/train\.en\.gz.*put it at"):
        load_data(cfg, progress=False)


def test_download_is_cached_and_verified(tmp_path, monkeypatch):
    import io
    import urllib.request

    make_multi30k(tmp_path / "src")
    calls = []

    class Response(io.BytesIO):
        headers: dict = {}

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def serve(request, timeout=None):
        name = request.full_url.rsplit("/", 1)[1]
        calls.append(name)
        return Response((tmp_path / "src" / name).read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    cfg = build_config(PAIR, preset="tiny")
    assert len(load_data(cfg, progress=False).splits["val"]) == 12
    assert sorted(calls) == sorted(f"{s}.{lang}.gz" for s in ("train", "val", "test_2016_flickr") for lang in ("en", "de"))
    load_data(cfg, progress=False)  # second load: from the cache, no download
    assert len(calls) == 6


def test_bad_tokenizer_file_is_a_clear_error(tmp_path):
    from tokenizers import Tokenizer, models

    make_multi30k(tmp_path / "m30k")
    (tmp_path / "junk.json").write_text("not json")
    with pytest.raises(DataError, match="not a tokenizers JSON"):
        load_data(_config(tmp_path / "m30k", f"pair.x.tokenizer_file={tmp_path / 'junk.json'}"), progress=False)
    Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")).save(str(tmp_path / "other.json"))
    with pytest.raises(DataError, match=r"incompatible tokenizer: expected special tokens \[PAD\]=0"):
        load_data(_config(tmp_path / "m30k", f"pair.y.tokenizer_file={tmp_path / 'other.json'}"), progress=False)


def test_real_mirror(multi30k_mirror):
    data = load_data(build_config(PAIR, preset="tiny", sets=[f"data.data_dir={multi30k_mirror}"]), progress=False)
    assert [len(data.splits[s]) for s in ("val", "test")] == [1014, 1000]
    assert len(data.splits["train"]) == 512  # the tiny preset's train_size
