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

Text is ``positional``: the encoder returns one feature vector per token (a :class:`Code` with the
padding mask), so a latent conditioned on a sentence has one Gaussian per source token, and the
decoder cross-attends over such a code (masked) as a Transformer's decoder attends over its encoder's
output. Networks come from ``transformers`` configured from scratch: a small ``BertModel`` encoder and
a causal ``BertModel`` decoder (is_decoder, with cross-attention to the code). A flat code (B, D)
is read as a single memory position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from cmmkit.errors import CheckpointError, ConfigError, DataError
from cmmkit.modalities.text_tokenizer import (  # noqa: F401  (re-exported)
    BOS,
    EOS,
    OURS,
    PAD,
    SPECIALS,
    UNK,
    Specials,
    TextOptions,
    encode,
    fingerprint,
    load_tokenizer,
    pad,
    text_info,
    train_tokenizer,
    wrap_tokenizer,
)
from cmmkit.modality import Code, Decoder, Modality, Value, code_parts


# --- networks ------------------------------------------------------------------------------
def _bert_config(o: TextOptions, vocab: int, decoder: bool, pad_id: int) -> Any:
    from transformers import BertConfig

    if o.hidden % o.heads:
        raise ConfigError(f"text hidden={o.hidden} must be a multiple of heads={o.heads}")
    layers = o.layers if decoder or o.encoder_layers is None else o.encoder_layers
    return BertConfig(vocab_size=vocab, hidden_size=o.hidden, num_hidden_layers=layers, num_attention_heads=o.heads,
                      intermediate_size=o.ff, hidden_dropout_prob=o.dropout, attention_probs_dropout_prob=o.dropout,
                      max_position_embeddings=o.max_positions, type_vocab_size=1, pad_token_id=pad_id,
                      is_decoder=decoder, add_cross_attention=decoder, use_cache=False)


class TextEncoder(nn.Module):
    """Sentence -> a :class:`Code` of one feature vector per token (B, L, out) with the padding mask:
    BERT layers, then a linear map and tanh at each position."""

    def __init__(self, o: TextOptions, vocab: int, out_features: int, sp: Specials = OURS) -> None:
        super().__init__()
        from transformers import BertModel

        self.bert = BertModel(_bert_config(o, vocab, decoder=False, pad_id=sp.pad), add_pooling_layer=False)
        self.out = nn.Sequential(nn.Linear(o.hidden, out_features), nn.Tanh())

    def forward(self, x: Value) -> Code:
        mask = x["mask"].bool()
        h = self.bert(input_ids=x["ids"], attention_mask=mask.long()).last_hidden_state  # (B, L, d)
        return Code(self.out(h), mask)


class TextDecoder(Decoder):
    """p(sentence | code): the code's positions (a structured latent, one per source token, or a flat
    code as one position) projected to the decoder's width and read, masked, by the cross-attention of
    a causal BERT decoder (is_decoder, add_cross_attention) with a tied output layer. It reads nothing
    else. ``log_prob`` is the exact teacher-forced log-likelihood; ``generate`` is beam search (greedy
    at beam 1) at noise 0 and ancestral sampling at temperature ``noise_scale`` > 0."""

    def __init__(self, o: TextOptions, vocab: int, in_features: int, sp: Specials = OURS) -> None:
        super().__init__()
        from transformers import BertModel

        self.o, self.vocab, self.sp = o, vocab, sp
        self.memory_in = nn.Sequential(nn.Linear(in_features, o.hidden), nn.LayerNorm(o.hidden))
        self.lm = BertModel(_bert_config(o, vocab, decoder=True, pad_id=sp.pad), add_pooling_layer=False)
        # output layer tied to the input embeddings by hand: transformers' own tying shares tensors,
        # which safetensors checkpoints refuse
        self.out_bias = nn.Parameter(torch.zeros(vocab))

    def memory(self, h: torch.Tensor | Code) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(memory (B, S, hidden), its mask (B, S) or None) of a code; a flat (B, D) code is one position."""
        feats, mask = code_parts(h)
        if feats.dim() == 2:
            feats = feats[:, None, :]
        elif feats.dim() > 3:  # several position axes (e.g. a grid): one sequence of positions
            feats = feats.flatten(1, -2)
            mask = None if mask is None else mask.flatten(1)
        return self.memory_in(feats), mask

    def _logits(self, ids: torch.Tensor, mask: torch.Tensor | None, memory: torch.Tensor,
                memory_mask: torch.Tensor | None) -> torch.Tensor:
        """Logits (B, L, V) of the token after each position (teacher forcing)."""
        h = self.lm(input_ids=ids, attention_mask=None if mask is None else mask.long(),
                    encoder_hidden_states=memory,
                    encoder_attention_mask=None if memory_mask is None else memory_mask.long()).last_hidden_state
        return F.linear(h, self.lm.embeddings.word_embeddings.weight, self.out_bias)

    def _step(self, last: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None,
              cache: Any) -> tuple[torch.Tensor, Any]:
        """Next-token logits (N, V) for the newest tokens ``last`` (N, 1), reusing the key/value cache
        of the earlier positions (transformers' EncoderDecoderCache; None on the first step)."""
        out = self.lm(input_ids=last, encoder_hidden_states=memory,
                      encoder_attention_mask=None if memory_mask is None else memory_mask.long(),
                      cache=cache, use_cache=True)
        h = out.last_hidden_state[:, -1]
        return F.linear(h, self.lm.embeddings.word_embeddings.weight, self.out_bias).float(), out.cache

    def log_prob(self, h: torch.Tensor | Code, x: Value) -> torch.Tensor:
        ids, mask = x["ids"], x["mask"]
        inputs = ids[:, :-1]
        if self.training and self.o.word_dropout > 0:  # never the BOS at position 0, never padding
            drop = torch.rand(inputs.shape, device=inputs.device) < self.o.word_dropout
            drop[:, 0] = False
            inputs = torch.where(drop & mask[:, :-1].bool(), torch.full_like(inputs, self.sp.unk), inputs)
        logits = self._logits(inputs, mask[:, :-1], *self.memory(h))
        nll = F.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten(), reduction="none")
        return -(nll.view(ids.shape[0], -1) * mask[:, 1:]).sum(1)

    @torch.no_grad()
    def generate(self, h: torch.Tensor | Code, noise_scale: float = 0.0) -> Value:
        memory, memory_mask = self.memory(h)
        if noise_scale > 0 or self.o.beam_size == 1:
            ids = self._sample(memory, memory_mask, noise_scale)
        else:
            ids = self._beam(memory, memory_mask, self.o.beam_size)
        return finish(ids, self.sp)

    def _sample(self, memory: torch.Tensor, memory_mask: torch.Tensor | None, temperature: float) -> torch.Tensor:
        b = memory.shape[0]
        ids = torch.full((b, 1), self.sp.bos, dtype=torch.long, device=memory.device)
        done = torch.zeros(b, dtype=torch.bool, device=memory.device)
        cache = None
        for _ in range(self.o.max_decode_length - 1):
            logits, cache = self._step(ids[:, -1:], memory, memory_mask, cache)
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

    def _beam(self, memory: torch.Tensor, memory_mask: torch.Tensor | None, k: int) -> torch.Tensor:
        b, dev = memory.shape[0], memory.device
        mem = memory.repeat_interleave(k, 0)
        mem_mask = None if memory_mask is None else memory_mask.repeat_interleave(k, 0)
        ids = torch.full((b * k, 1), self.sp.bos, dtype=torch.long, device=dev)
        scores = torch.full((b, k), float("-inf"), device=dev)
        scores[:, 0] = 0.0  # all beams start identical: keep one
        scores = scores.view(-1)
        done = torch.zeros(b * k, dtype=torch.bool, device=dev)
        lengths = torch.ones(b * k, device=dev)
        cache = None
        for _ in range(self.o.max_decode_length - 1):
            logits, cache = self._step(ids[:, -1:], mem, mem_mask, cache)
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
    positional = True
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

    def save_outputs(self, items: list[Any], path: Path, columns: int = 1, labels: list[str] | None = None,
                     column_labels: list[str] | None = None) -> list[Path]:
        """One output per line in a UTF-8 ``.txt`` file (``columns`` outputs per condition, in order;
        labels are not written: line order is the conditions' order)."""
        path = Path(path)
        if path.suffix != ".txt":
            raise ConfigError(f"{path}: the text modality writes .txt files (one output per line)")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{s}\n" for s in items), encoding="utf-8")
        return [path]

    def demo_spec(self) -> Any:
        """``cmmkit demo``: a sentence box as input (key ``text``), text as output, with a few sampled
        alternatives beside the noise-free one (when the model has a latent to sample)."""
        from cmmkit.demo.spec import ModalityDemo, Text, View

        return ModalityDemo(controls=(Text("text", "A man rides a bike.", "sentence"),),
                            views=(View("text", "text"),), alternatives=3)

