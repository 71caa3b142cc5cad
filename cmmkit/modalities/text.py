"""Text as a modality: subword tokens, a transformer encoder, an autoregressive transformer decoder.

Why it looks like this: the engine only sees ``prepare``/``encoder``/``decoder``/``log_prob``/
``generate``, so text must fit the same contract as images. A sentence is a dict value
``{"ids": (B, L) token ids, "mask": (B, L) bool, "tokenizer": (B,) fingerprint}`` padded per
batch; ids are ``[BOS] w1 .. wn [EOS] [PAD]..``. The likelihood is categorical and exact: ``log_prob``
is the teacher-forced sum of token log-probabilities (padding masked), so a bound on it is a bound on
the discrete sentence probability (``discrete_log_offset`` is 0). The tokenizer belongs to the data:
the pair trains it on the training split (:func:`train_tokenizer`) and puts its JSON in ``info``,
which every checkpoint keeps; raw values carry the tokenizer's fingerprint so a run never reads ids
made by another tokenizer without a clear error.

Networks come from ``transformers`` configured from scratch: a small ``BertModel`` encoder read
out by learned attention-pooling queries into (B, out) features, and a causal ``BertModel`` decoder
(is_decoder, with cross-attention to a few memory slots projected from the latent/conditioning vector).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, NamedTuple

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from cmmkit.errors import CheckpointError, ConfigError, DataError
from cmmkit.modality import Decoder, Modality, ModalityOptions, Value

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

    vocab_size: int = Field(8000, ge=8, description="BPE vocabulary trained on the training split")
    tokenizer_file: str | None = Field(None, description="use this tokenizers JSON instead of training one "
                                       "(e.g. one exported from another run); must hold [PAD] [UNK] [BOS] [EOS]")
    pretrained: str | None = Field(None, description="Hugging Face name of a pretrained tokenizer (needs internet "
                                   "or the HF cache; only the tokenizer: the networks are trained from scratch)")
    hidden: int = Field(128, ge=8, description="transformer width d")
    layers: int = Field(2, ge=1, description="transformer layers (encoder and decoder each)")
    heads: int = Field(4, ge=1)
    ff: int = Field(512, ge=8, description="feed-forward width")
    slots: int = Field(8, ge=1, description="pooling queries of the encoder / memory slots of the decoder")
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
    ids = [tok.token_to_id(s) for s in SPECIALS]
    if specials is not None:
        return PreTrainedTokenizerFast(tokenizer_object=tok)
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


# --- networks ------------------------------------------------------------------------------
def _bert_config(o: TextOptions, vocab: int, decoder: bool, pad_id: int) -> Any:
    from transformers import BertConfig

    if o.hidden % o.heads:
        raise ConfigError(f"text hidden={o.hidden} must be a multiple of heads={o.heads}")
    return BertConfig(vocab_size=vocab, hidden_size=o.hidden, num_hidden_layers=o.layers, num_attention_heads=o.heads,
                      intermediate_size=o.ff, hidden_dropout_prob=o.dropout, attention_probs_dropout_prob=o.dropout,
                      max_position_embeddings=o.max_positions, type_vocab_size=1, pad_token_id=pad_id,
                      is_decoder=decoder, add_cross_attention=decoder, use_cache=False)


class TextEncoder(nn.Module):
    """Sentence -> (B, out) features: BERT layers, ``slots`` learned queries attend over the tokens
    (attention pooling keeps more than one mean vector), flattened, linear, tanh."""

    def __init__(self, o: TextOptions, vocab: int, out_features: int, sp: Specials = OURS) -> None:
        super().__init__()
        from transformers import BertModel

        self.bert = BertModel(_bert_config(o, vocab, decoder=False, pad_id=sp.pad), add_pooling_layer=False)
        self.queries = nn.Parameter(torch.randn(o.slots, o.hidden) * o.hidden ** -0.5)
        self.out = nn.Sequential(nn.Linear(o.slots * o.hidden, out_features), nn.Tanh())

    def forward(self, x: Value) -> torch.Tensor:
        h = self.bert(input_ids=x["ids"], attention_mask=x["mask"].long()).last_hidden_state  # (B, L, d)
        scores = torch.einsum("kd,bld->bkl", self.queries, h) / math.sqrt(h.shape[-1])
        scores = scores.masked_fill(~x["mask"][:, None, :], float("-inf"))
        pooled = torch.einsum("bkl,bld->bkd", scores.softmax(-1), h)
        return self.out(pooled.flatten(1))


class TextDecoder(Decoder):
    """p(sentence | h): h projected into ``slots`` memory vectors, read by the cross-attention of a
    causal BERT decoder (is_decoder, add_cross_attention) with a tied output layer. ``log_prob`` is
    the exact teacher-forced log-likelihood; ``generate`` is beam
    search (greedy at beam 1) at noise 0 and ancestral sampling at temperature ``noise_scale`` > 0."""

    def __init__(self, o: TextOptions, vocab: int, in_features: int, sp: Specials = OURS) -> None:
        super().__init__()
        from transformers import BertModel

        self.o, self.vocab, self.sp = o, vocab, sp
        self.memory = nn.Sequential(nn.Linear(in_features, o.slots * o.hidden), nn.Unflatten(1, (o.slots, o.hidden)),
                                    nn.LayerNorm(o.hidden))
        self.lm = BertModel(_bert_config(o, vocab, decoder=True, pad_id=sp.pad), add_pooling_layer=False)
        # output layer tied to the input embeddings by hand: transformers' own tying shares tensors,
        # which safetensors checkpoints refuse
        self.out_bias = nn.Parameter(torch.zeros(vocab))

    def _logits(self, ids: torch.Tensor, mask: torch.Tensor | None, memory: torch.Tensor) -> torch.Tensor:
        """Logits (B, L, V) of the token after each position (teacher forcing)."""
        h = self.lm(input_ids=ids, attention_mask=None if mask is None else mask.long(),
                    encoder_hidden_states=memory).last_hidden_state
        return F.linear(h, self.lm.embeddings.word_embeddings.weight, self.out_bias)

    def _step(self, last: torch.Tensor, memory: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """Next-token logits (N, V) for the newest tokens ``last`` (N, 1), reusing the key/value cache
        of the earlier positions (transformers' EncoderDecoderCache; None on the first step)."""
        out = self.lm(input_ids=last, encoder_hidden_states=memory, cache=cache, use_cache=True)
        h = out.last_hidden_state[:, -1]
        return F.linear(h, self.lm.embeddings.word_embeddings.weight, self.out_bias).float(), out.cache

    def log_prob(self, h: torch.Tensor, x: Value) -> torch.Tensor:
        ids, mask = x["ids"], x["mask"]
        inputs = ids[:, :-1]
        if self.training and self.o.word_dropout > 0:  # never the BOS at position 0, never padding
            drop = torch.rand(inputs.shape, device=inputs.device) < self.o.word_dropout
            drop[:, 0] = False
            inputs = torch.where(drop & mask[:, :-1].bool(), torch.full_like(inputs, self.sp.unk), inputs)
        logits = self._logits(inputs, mask[:, :-1], self.memory(h))
        nll = F.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten(), reduction="none")
        return -(nll.view(ids.shape[0], -1) * mask[:, 1:]).sum(1)

    @torch.no_grad()
    def generate(self, h: torch.Tensor, noise_scale: float = 0.0) -> Value:
        memory = self.memory(h)
        if noise_scale > 0 or self.o.beam_size == 1:
            ids = self._sample(memory, noise_scale)
        else:
            ids = self._beam(memory, self.o.beam_size)
        return finish(ids, self.sp)

    def _sample(self, memory: torch.Tensor, temperature: float) -> torch.Tensor:
        b = memory.shape[0]
        ids = torch.full((b, 1), self.sp.bos, dtype=torch.long, device=memory.device)
        done = torch.zeros(b, dtype=torch.bool, device=memory.device)
        cache = None
        for _ in range(self.o.max_decode_length - 1):
            logits, cache = self._step(ids[:, -1:], memory, cache)
            if temperature > 0:
                nxt = torch.multinomial(F.softmax(logits / temperature, -1), 1).squeeze(1)
            else:
                nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.sp.pad), nxt)
            ids = torch.cat([ids, nxt[:, None]], 1)
            done = done | (nxt == self.sp.eos)
            if bool(done.all()):
                break
        return ids

    def _beam(self, memory: torch.Tensor, k: int) -> torch.Tensor:
        b, dev = memory.shape[0], memory.device
        mem = memory.repeat_interleave(k, 0)
        ids = torch.full((b * k, 1), self.sp.bos, dtype=torch.long, device=dev)
        scores = torch.full((b, k), float("-inf"), device=dev)
        scores[:, 0] = 0.0  # all beams start identical: keep one
        scores = scores.view(-1)
        done = torch.zeros(b * k, dtype=torch.bool, device=dev)
        lengths = torch.ones(b * k, device=dev)
        cache = None
        for _ in range(self.o.max_decode_length - 1):
            logits, cache = self._step(ids[:, -1:], mem, cache)
            logp = F.log_softmax(logits, -1)
            # a finished beam continues only with [PAD] at no cost
            logp = torch.where(done[:, None], torch.full_like(logp, float("-inf")), logp)
            logp[:, self.sp.pad] = torch.where(done, 0.0, float("-inf"))
            total = (scores[:, None] + logp).view(b, k * self.vocab)
            top, idx = total.topk(k, dim=1)
            beam = (idx // self.vocab + torch.arange(b, device=dev)[:, None] * k).view(-1)
            tok = (idx % self.vocab).view(-1)
            ids = torch.cat([ids[beam], tok[:, None]], 1)
            cache.reorder_cache(beam)
            lengths = lengths[beam] + (~done[beam]).float()
            done = done[beam] | (tok == self.sp.eos)
            scores = top.view(-1)
            if bool(done.all()):
                break
        norm = scores / (((5.0 + lengths) / 6.0) ** self.o.length_penalty)
        best = norm.view(b, k).argmax(1) + torch.arange(b, device=dev) * k
        return ids[best]


def finish(ids: torch.Tensor, sp: Specials = OURS) -> dict[str, torch.Tensor]:
    """Generated ids -> a prepared value: tokens after the first [EOS] become [PAD], mask up to it."""
    eos = (ids == sp.eos).long()
    after = (eos.cumsum(1) - eos) > 0  # strictly after the first EOS
    return {"ids": ids.masked_fill(after, sp.pad), "mask": ~after}


class TextModality(Modality):
    """A sentence in one language. ``info`` (from the pair): ``tokenizer`` JSON, its sha256,
    ``mean_length`` (tokens incl. BOS/EOS, the ``dims`` used for bits per token), ``language``."""

    name = "text"
    Options = TextOptions
    options: TextOptions

    def __init__(self, options: TextOptions, info: dict[str, Any]) -> None:
        super().__init__(options, info)
        if "tokenizer" not in info:
            raise CheckpointError("text modality info has no tokenizer; the run or pair did not record one")
        self.specials = Specials(*info.get("specials", OURS))
        self.tokenizer = wrap_tokenizer(info["tokenizer"], "the run's tokenizer",
                                        None if self.specials == OURS else self.specials)
        self.fingerprint = fingerprint(info["tokenizer"])
        self.vocab = len(self.tokenizer)

    # --- data ---
    def prepare(self, value: Value, dequantize: bool = True) -> Value:
        """Checks the tokenizer fingerprint, trims padding to the batch's longest sentence."""
        fp = value.get("tokenizer")
        if fp is not None and bool((fp != self.fingerprint).any()):
            raise DataError("these token ids were made by another tokenizer than this run's "
                            f"({self.info.get('language', '')} sha256 {self.info.get('tokenizer_sha256', '?')[:12]}): "
                            "the data was re-tokenized differently (other vocab_size or tokenizer_file, or "
                            "changed training files); load the data with the tokenizer the run was trained with")
        length = int(value["mask"].sum(1).max()) if value["mask"].numel() else 1
        return {"ids": value["ids"][:, :length], "mask": value["mask"][:, :length].bool()}

    @property
    def dims(self) -> int:
        """Mean training sentence length in tokens after BOS (the predicted tokens incl. EOS): bits per
        dimension are then bits per predicted token of an average sentence."""
        return max(1, round(float(self.info.get("mean_length", 2)) - 1))

    # --- networks ---
    def encoder(self, out_features: int) -> nn.Module:
        return TextEncoder(self.options, self.vocab, out_features, self.specials)

    def decoder(self, in_features: int) -> Decoder:
        return TextDecoder(self.options, self.vocab, in_features, self.specials)

    # --- users ---
    def from_user(self, items: list[Any], **_: Any) -> Value:
        """Strings or ``{"text": ...}`` dicts -> a raw batch value."""
        texts = []
        for item in items:
            text = item.get("text") if isinstance(item, dict) else item
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(f"text condition {item!r}: expected a non-empty string or {{'text': '...'}}")
            texts.append(text.strip())
        seqs = encode(self.tokenizer, texts, self.specials)
        too_long = [t for t, s in zip(texts, seqs) if len(s) > self.options.max_positions]
        if too_long:
            raise ConfigError(f"text {too_long[0][:60]!r}... is longer than max_positions="
                              f"{self.options.max_positions} tokens")
        ids, mask = pad(seqs, self.specials.pad)
        return {"ids": ids, "mask": mask, "tokenizer": torch.full((len(texts),), self.fingerprint, dtype=torch.long)}

    def to_user(self, value: Value) -> list[str]:
        """Detokenized strings (special tokens dropped)."""
        ids = value["ids"].cpu().tolist()
        mask = value["mask"].cpu().tolist()
        special = set(self.specials)
        return [self.tokenizer.decode([t for t, m in zip(row, ms) if m and t not in special]).strip()
                for row, ms in zip(ids, mask)]

    def save_preview(self, real: Value, generated: Value, path: Any) -> bool:
        """The epoch's translations beside the references, as ``path`` with suffix .txt."""
        lines = [f"REF: {r}\nGEN: {g}\n" for r, g in zip(self.to_user(real), self.to_user(generated))]
        out = Path(path).with_suffix(".txt")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines), encoding="utf-8")
        return True

    def save_outputs(self, items: list[Any], path: Path, columns: int = 1,
                     labels: list[str] | None = None) -> list[Path]:
        """One output per line in a UTF-8 ``.txt`` file (``columns`` outputs per condition, in order)."""
        path = Path(path)
        if path.suffix != ".txt":
            raise ConfigError(f"{path}: the text modality writes .txt files (one output per line)")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{s}\n" for s in items), encoding="utf-8")
        return [path]

