"""The text modality: exact teacher-forced likelihood, padding, decoding, user round-trip."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from cmmkit.errors import ConfigError, DataError
from cmmkit.modalities.text import BOS, EOS, PAD, TextModality, TextOptions, finish, text_info, train_tokenizer

TEXTS = ["A man rides a bike.", "Two dogs play in the park.", "A girl sits on a bench.", "Ein Mädchen läuft."] * 5
SMALL = {"hidden": 16, "layers": 1, "heads": 2, "ff": 32, "dropout": 0.0, "max_decode_length": 12}


@pytest.fixture(scope="module")
def info():
    tok = train_tokenizer(TEXTS, 80)
    return text_info(tok.backend_tokenizer.to_str(), [10, 12])


def _modality(info, **opts):
    return TextModality(TextOptions(**{**SMALL, **opts}), info)


def test_user_round_trip(info):
    m = _modality(info)
    raw = m.from_user(["A man rides a bike.", {"text": "Ein Mädchen läuft."}])
    assert raw["ids"][:, 0].tolist() == [BOS, BOS] and raw["tokenizer"].tolist() == [m.fingerprint] * 2
    assert m.to_user(m.prepare(raw)) == ["A man rides a bike.", "Ein Mädchen läuft."]
    with pytest.raises(ConfigError, match="non-empty string"):
        m.from_user([{"txt": "x"}])


def test_prepare_checks_tokenizer_and_trims_padding(info):
    m = _modality(info)
    raw = m.from_user(["A man rides a bike."])
    padded = {"ids": F.pad(raw["ids"], (0, 5), value=PAD), "mask": F.pad(raw["mask"], (0, 5)), "tokenizer": raw["tokenizer"]}
    assert torch.equal(m.prepare(padded)["ids"], raw["ids"])
    other = _modality(text_info(train_tokenizer(TEXTS, 60).backend_tokenizer.to_str(), [10]))
    with pytest.raises(DataError, match="another tokenizer"):
        other.prepare(raw)


def _manual_log_prob(dec, h, ids, mask):
    """Token by token: run the decoder on each prefix and read the next token's log-probability."""
    memory, memory_mask = dec.memory(h)
    total = torch.zeros(len(ids))
    for b in range(len(ids)):
        n = int(mask[b].sum())
        mem = memory[b:b + 1] if memory_mask is None else memory[b:b + 1, memory_mask[b]]  # real positions only
        for t in range(1, n):
            logits = dec._logits(ids[b:b + 1, :t], None, mem, None)[0, -1]
            total[b] += F.log_softmax(logits, -1)[ids[b, t]]
    return total


def test_log_prob_is_exact_and_ignores_padding(info):
    torch.manual_seed(0)
    m = _modality(info)
    dec = m.decoder(6).eval()
    x = m.prepare(m.from_user(["A man rides a bike.", "Two dogs play."]))
    h = torch.randn(2, 6)
    lp = dec.log_prob(h, x)
    assert torch.isfinite(lp).all()
    torch.testing.assert_close(lp, _manual_log_prob(dec, h, x["ids"], x["mask"]), atol=1e-4, rtol=1e-5)
    # more padding, and junk ids under the padding mask, change nothing
    junk = {"ids": F.pad(x["ids"], (0, 3), value=7), "mask": F.pad(x["mask"], (0, 3))}
    junk["ids"] = junk["ids"].masked_fill(~junk["mask"], 9)
    torch.testing.assert_close(dec.log_prob(h, junk), lp, atol=1e-5, rtol=1e-5)


def test_log_prob_reads_a_positional_code_and_ignores_its_padding(info):
    """A structured latent (one vector per source position, with a mask): log_prob equals the token-by-
    token sum over the real positions alone, and junk at masked positions changes nothing."""
    from cmmkit.modality import Code

    torch.manual_seed(4)
    m = _modality(info)
    dec = m.decoder(6).eval()
    x = m.prepare(m.from_user(["A man rides a bike.", "Two dogs play."]))
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    h = Code(torch.randn(2, 5, 6), mask)
    lp = dec.log_prob(h, x)
    torch.testing.assert_close(lp, _manual_log_prob(dec, h, x["ids"], x["mask"]), atol=1e-4, rtol=1e-5)
    junk = Code(torch.where(mask[..., None], h.features, torch.full_like(h.features, 50.0)), mask)
    torch.testing.assert_close(dec.log_prob(junk, x), lp, atol=1e-5, rtol=1e-5)
    # and the code matters: other features at the real positions change the likelihood
    assert not torch.allclose(dec.log_prob(Code(torch.randn(2, 5, 6), mask), x), lp)
    # beam search over a masked code equals beam search over the real positions only
    dec.o = TextOptions(**{**SMALL, "beam_size": 3})
    both = dec.generate(h, 0.0)
    second = dec.generate(Code(h.features[1:, :3], None), 0.0)
    n = int(second["mask"].sum())
    assert both["ids"][1, :n].tolist() == second["ids"][0, :n].tolist()


def test_greedy_is_argmax_and_beam_is_at_least_as_likely(info):
    torch.manual_seed(1)
    m = _modality(info, beam_size=1, length_penalty=0.0)
    dec = m.decoder(6).eval()
    h = torch.randn(3, 6)
    greedy = dec.generate(h, 0.0)
    memory, _ = dec.memory(h)
    for b in range(3):  # each greedy token is the argmax given its prefix
        n = int(greedy["mask"][b].sum())
        for t in range(1, n):
            logits = dec._logits(greedy["ids"][b:b + 1, :t], None, memory[b:b + 1], None)[0, -1]
            assert int(logits.argmax()) == int(greedy["ids"][b, t])
    dec.o = TextOptions(**{**SMALL, "beam_size": 4, "length_penalty": 0.0})
    beam = dec.generate(h, 0.0)
    assert (dec.log_prob(h, beam) >= dec.log_prob(h, greedy) - 1e-5).all()


def test_sampling_and_finish(info):
    torch.manual_seed(2)
    m = _modality(info)
    dec = m.decoder(6).eval()
    out = dec.generate(torch.randn(4, 6), noise_scale=1.0)
    assert (out["ids"][:, 0] == BOS).all() and out["ids"].shape[1] <= 12
    assert torch.isfinite(dec.log_prob(torch.zeros(4, 6), out)).all()
    done = finish(torch.tensor([[BOS, 5, EOS, 6, 7]]))
    assert done["ids"].tolist() == [[BOS, 5, EOS, PAD, PAD]] and done["mask"].tolist() == [[True, True, True, False, False]]


def test_encoder_features_ignore_padding(info):
    torch.manual_seed(3)
    m = _modality(info)
    enc = m.encoder(10).eval()
    x = m.prepare(m.from_user(["A man rides a bike."]))
    more = {"ids": F.pad(x["ids"], (0, 4), value=PAD), "mask": F.pad(x["mask"], (0, 4))}
    f = enc(x)
    n = int(x["mask"].sum())
    assert f.features.shape == (1, n, 10) and f.features.abs().max() <= 1 and f.mask.all()
    g = enc(more)  # one code per token; padding positions are masked and change nothing at the real ones
    assert g.features.shape == (1, n + 4, 10) and g.mask[0].tolist() == [True] * n + [False] * 4
    torch.testing.assert_close(g.features[:, :n], f.features, atol=1e-5, rtol=1e-5)


def test_save_outputs_writes_text(info, tmp_path):
    m = _modality(info)
    assert m.save_outputs(["eins", "zwei"], tmp_path / "o.txt") == [tmp_path / "o.txt"]
    assert (tmp_path / "o.txt").read_text(encoding="utf-8") == "eins\nzwei\n"
    with pytest.raises(ConfigError, match=r"\.txt"):
        m.save_outputs(["x"], tmp_path / "o.png")
    raw = m.prepare(m.from_user(["A man rides a bike."]))
    assert m.save_preview(raw, raw, tmp_path / "samples" / "epoch_001.png")
    assert "GEN: A man rides a bike." in (tmp_path / "samples" / "epoch_001.txt").read_text(encoding="utf-8")


def test_pretrained_tokenizer_offline_is_a_clear_error(monkeypatch):
    import transformers

    from cmmkit.modalities.text import load_tokenizer

    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline)
    with pytest.raises(DataError, match="pretrained tokenizer 'bert-base-cased' could not be loaded.*internet"):
        load_tokenizer(TextOptions(pretrained="bert-base-cased"), [], None)


def test_tokenizer_with_other_special_ids_works(info):
    """A pretrained-style tokenizer ([CLS]/[SEP]/[PAD] at other ids) through the whole modality."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from cmmkit.modalities.text import Specials

    vocab = {w: i for i, w in enumerate(["a", "man", "rides", "bike", ".", "[UNK]", "[CLS]", "[SEP]", "[PAD]"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                 sep_token="[SEP]")
    sp = Specials(pad=8, unk=5, bos=6, eos=7)
    m = _modality(text_info(hf.backend_tokenizer.to_str(), [5], specials=sp))
    raw = m.from_user(["a man rides a bike .", "a man ."])
    assert raw["ids"][1].tolist() == [6, 0, 1, 4, 7, 8, 8, 8] and m.to_user(m.prepare(raw))[1] == "a man ."
    dec = m.decoder(4).eval()
    assert torch.isfinite(dec.log_prob(torch.zeros(2, 4), m.prepare(raw))).all()
    out = dec.generate(torch.zeros(2, 4))
    assert (out["ids"][:, 0] == 6).all()


def test_word_dropout_only_while_training():
    import torch

    from cmmkit.modalities.text import OURS, TextDecoder, TextOptions

    ids = torch.tensor([[OURS.bos, 5, 6, 7, 8, OURS.eos]])
    x, h = {"ids": ids, "mask": torch.ones_like(ids)}, torch.randn(1, 4)

    def decoder(p):
        torch.manual_seed(0)
        return TextDecoder(TextOptions(hidden=16, layers=1, heads=2, ff=32, dropout=0.0, word_dropout=p),
                           30, 4, OURS)

    plain, dropping = decoder(0.0), decoder(0.5)
    dropping.eval()
    assert torch.equal(dropping.log_prob(h, x), plain.eval().log_prob(h, x))  # evaluation: exact, no dropout
    plain.train(), dropping.train()
    with torch.no_grad():
        assert len({float(plain.log_prob(h, x)) for _ in range(6)}) == 1  # no other randomness
        assert len({float(dropping.log_prob(h, x)) for _ in range(6)}) > 1  # inputs randomly become [UNK]
