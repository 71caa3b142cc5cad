"""The tokenizer side of the text modality: options, special tokens, training/wrapping/loading a
tokenizer, fingerprints, encoding and padding. Split from :mod:`cmmkit.modalities.text` so each
module stays small; that module re-exports these names."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch
from pydantic import Field

from cmmkit.errors import DataError
from cmmkit.modality import ModalityOptions

SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
PAD, UNK, BOS, EOS = range(4)


class Specials(NamedTuple):
    """Ids of the special tokens: 0-3 for tokenizers cmmkit trains, a pretrained tokenizer's own
    (``[CLS]``/``[SEP]`` serve as BOS/EOS for BERT's). Kept in ``info["specials"]``."""

    pad: int = PAD
    unk: int = UNK
    bos: int = BOS
    eos: int = EOS


OURS = Specials()


class TextOptions(ModalityOptions):
    """Tokenizer, network sizes and decoding of one text side."""

    decode_fields: ClassVar[tuple[str, ...]] = ("beam_size", "length_penalty", "max_decode_length")

    vocab_size: int = Field(8000, ge=8, description="BPE vocabulary trained on the training split")
    tokenizer_file: str | None = Field(None, description="use this tokenizers JSON instead of training one "
                                       "(e.g. one exported from another run); must hold [PAD] [UNK] [BOS] [EOS]")
    pretrained: str | None = Field(None, description="Hugging Face name of a pretrained tokenizer (needs internet "
                                   "or the HF cache; only the tokenizer: the networks are trained from scratch)")
    hidden: int = Field(128, ge=8, description="transformer width d")
    layers: int = Field(2, ge=1, description="transformer layers (encoder and decoder each)")
    heads: int = Field(4, ge=1)
    ff: int = Field(512, ge=8, description="feed-forward width")
    encoder_layers: int | None = Field(None, ge=1, description="layers of this side's encoder when it differs from "
                                       "``layers`` (e.g. a light encoder of the target for CMMA's posterior h)")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    word_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="decoder inputs replaced by [UNK] with this "
                                "probability while training (Bowman et al. 2016): the decoder must read h")
    max_positions: int = Field(128, ge=4, description="longest sequence (tokens incl. BOS/EOS) the networks take")
    beam_size: int = Field(4, ge=1, description="beam search width at noise 0 (1: greedy)")
    length_penalty: float = Field(0.6, ge=0.0, description="GNMT length normalisation alpha of beam scores")
    max_decode_length: int = Field(64, ge=2, description="longest generated sequence (tokens incl. BOS/EOS)")


# --- tokenizers ----------------------------------------------------------------------------
def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A BPE tokenizer (NFC, Metaspace: detokenization is exact) trained on ``texts``.
    Deterministic for the same texts and size, so a re-loaded dataset gets the same ids."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                                       show_progress=False))
    return wrap_tokenizer(tok.to_str(), "a freshly trained tokenizer")


def wrap_tokenizer(tokenizer_json: str, source: str, specials: Specials | None = None) -> Any:
    """``transformers.PreTrainedTokenizerFast`` from a tokenizers JSON. Without ``specials`` it must be
    one of ours (special tokens [PAD] [UNK] [BOS] [EOS] at ids 0-3): clear error otherwise."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    try:
        tok = Tokenizer.from_str(tokenizer_json)
    except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
        raise DataError(f"{source}: not a tokenizers JSON file ({exc})") from None
    if specials is not None:
        return PreTrainedTokenizerFast(tokenizer_object=tok)
    ids = [tok.token_to_id(s) for s in SPECIALS]
    if ids != [PAD, UNK, BOS, EOS]:
        found = ", ".join(f"{s}={i}" for s, i in zip(SPECIALS, ids))
        raise DataError(f"{source}: incompatible tokenizer: expected special tokens [PAD]=0 [UNK]=1 [BOS]=2 "
                        f"[EOS]=3, found {found}; use a tokenizer trained by cmmkit (or drop tokenizer_file)")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   bos_token="[BOS]", eos_token="[EOS]")


def load_tokenizer(options: TextOptions, texts: list[str], cache: Path | None) -> tuple[Any, str, Specials]:
    """The tokenizer a pair should use for ``options``: ``tokenizer_file``, else ``pretrained``, else
    one trained on ``texts`` (cached under ``cache`` so reloading the data reuses it). Returns
    (tokenizer, its JSON, its special token ids)."""
    if options.tokenizer_file:
        path = Path(options.tokenizer_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(f"tokenizer_file {path}: cannot read it ({exc.strerror or exc})") from None
        tok = wrap_tokenizer(text, f"tokenizer_file {path}")
        return tok, tok.backend_tokenizer.to_str(), OURS
    if options.pretrained:
        return _pretrained(options.pretrained)
    if cache is not None and cache.is_file():
        text = cache.read_text(encoding="utf-8")
        return wrap_tokenizer(text, str(cache)), text, OURS
    tok = train_tokenizer(texts, options.vocab_size)
    text = tok.backend_tokenizer.to_str()
    if cache is not None:
        from cmmkit.data.download import atomic_write_bytes

        atomic_write_bytes(cache, text.encode("utf-8"))
    return tok, text, OURS


def _pretrained(name: str) -> tuple[Any, str, Specials]:
    """A pretrained Hugging Face tokenizer (its ids are only vocabulary: embeddings are learned here).
    BOS/EOS are its bos/eos tokens, else BERT-style [CLS]/[SEP]. Offline: a clear error."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise DataError(f"pretrained tokenizer {name!r} could not be loaded: {str(exc).splitlines()[0]} It needs "
                        "internet access (or a copy in the Hugging Face cache); offline, drop "
                        "pair.x/y.pretrained to train a tokenizer on the training split") from None
    ids = {"pad": tok.pad_token_id, "unk": tok.unk_token_id, "bos": tok.bos_token_id if tok.bos_token_id is not None
           else tok.cls_token_id, "eos": tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id}
    if ids["pad"] is None and ids["eos"] is not None:
        ids["pad"] = ids["eos"]  # GPT-2 style: padding is masked anyway
    if any(v is None for v in ids.values()):
        raise DataError(f"pretrained tokenizer {name!r} lacks special tokens cmmkit needs: "
                        f"{', '.join(k for k, v in ids.items() if v is None)}")
    if not getattr(tok, "is_fast", False):
        raise DataError(f"pretrained tokenizer {name!r} has no fast (tokenizers) version to store in the run")
    text = tok.backend_tokenizer.to_str()
    specials = Specials(**ids)
    return wrap_tokenizer(text, f"pretrained tokenizer {name!r}", specials), text, specials


def fingerprint(tokenizer_json: str) -> int:
    """60-bit integer id of a tokenizer (fits an int64 tensor carried in raw values)."""
    return int(hashlib.sha256(tokenizer_json.encode("utf-8")).hexdigest()[:15], 16)


def encode(tokenizer: Any, texts: list[str], sp: Specials = OURS) -> list[list[int]]:
    """Token ids ``[BOS] .. [EOS]`` of each text (unpadded)."""
    return [[sp.bos, *ids, sp.eos] for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def pad(seqs: list[list[int]], pad_id: int = PAD) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) padded with ``pad_id`` to the longest sequence."""
    length = max((len(s) for s in seqs), default=1)
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.bool)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, :len(s)] = True
    return ids, mask


def text_info(tokenizer_json: str, train_lengths: list[int], language: str = "",
              specials: Specials = OURS) -> dict[str, Any]:
    """The ``info`` of a text side: tokenizer JSON and its hash, special ids, mean/max training length."""
    return {"tokenizer": tokenizer_json, "tokenizer_sha256": hashlib.sha256(tokenizer_json.encode()).hexdigest(),
            "specials": list(specials), "language": language,
            "mean_length": sum(train_lengths) / max(len(train_lengths), 1), "max_length": max(train_lengths, default=2)}
