"""The conditioning modality ``digit_text``: a digit word ("seven") and, optionally, the speaker.

The word and the speaker name are tokenized by a ``transformers.PreTrainedTokenizerFast`` wrapping a
``tokenizers`` WordLevel model whose vocabulary is ``[UNK]``, the ten digit words and the speaker
names of the training split (:func:`build_tokenizer`); its JSON is kept in ``info`` so a trained
run reads conditions without the data. A raw value is a (B, 1) or (B, 2) long tensor of token ids
(digit word[, speaker]).

- encoder: token embeddings -> MLP -> (B, out) softplus features (CMMA's f and h read y with it);
- decoder: q(y | z) for CMMA's log p(y) surrogate, a categorical over the digits (and one over the
  speakers) with an exact ``log_prob``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from cmmkit.api import DataError, Decoder, Modality, ModalityOptions, suggest

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
UNK = "[UNK]"


def vocabulary(speakers: list[str]) -> dict[str, int]:
    """Token ids: [UNK], the digit words, then ``speakers`` in order (the same speakers always give
    the same ids)."""
    return {w: i for i, w in enumerate([UNK, *DIGITS, *speakers])}


def build_tokenizer(speakers: list[str]) -> str:
    """JSON of a lower-casing, whitespace-splitting WordLevel tokenizer over :func:`vocabulary`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab=vocabulary(speakers), unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok.to_str()


def wrap(tokenizer_json: str) -> Any:
    """The ``transformers.PreTrainedTokenizerFast`` of a tokenizer JSON kept in ``info``."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(tokenizer_json), unk_token=UNK)


def digit_text_info(speakers: list[str], condition_on_speaker: bool) -> dict[str, Any]:
    """The ``info`` of the modality: tokenizer JSON (+ sha256), digit words, speakers, whether y has a speaker."""
    text = build_tokenizer(speakers)
    return {"tokenizer": text, "tokenizer_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "digits": list(DIGITS), "speakers": list(speakers), "condition_on_speaker": condition_on_speaker}


class DigitTextOptions(ModalityOptions):
    embedding: int = Field(32, ge=1, description="size of each token embedding")
    hidden: int = Field(128, ge=1, description="hidden softplus units of the encoder MLP and of q(y|z)")


class DigitTextEncoder(nn.Module):
    def __init__(self, vocab: int, columns: int, embedding: int, hidden: int, out_features: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embedding)
        self.mlp = nn.Sequential(nn.Linear(columns * embedding, hidden), nn.Softplus(),
                                 nn.Linear(hidden, out_features), nn.Softplus())

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.embed(y).flatten(1))


class CategoricalDecoder(Decoder):
    """z -> independent categoricals over the digit (and the speaker); values are token ids."""

    def __init__(self, in_features: int, hidden: int, token_ids: list[list[int]], vocab: int) -> None:
        super().__init__()
        self.sizes = [len(ids) for ids in token_ids]
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.Softplus(), nn.Linear(hidden, sum(self.sizes)))
        lookup = torch.full((len(token_ids), vocab), -1, dtype=torch.long)  # token id -> class, per column
        for c, ids in enumerate(token_ids):
            lookup[c, torch.tensor(ids)] = torch.arange(len(ids))
        self.register_buffer("lookup", lookup, persistent=False)
        self.register_buffer("tokens", torch.cat([torch.tensor(ids) for ids in token_ids]), persistent=False)

    def forward(self, h: torch.Tensor) -> list[torch.Tensor]:
        return [F.log_softmax(part, dim=-1) for part in self.net(h).split(self.sizes, dim=-1)]

    def log_prob(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(h.shape[0], device=h.device)
        for c, logp in enumerate(self(h)):
            total = total + logp.gather(1, self.lookup[c][x[:, c]].clamp(min=0).unsqueeze(1)).squeeze(1)
        return total

    def generate(self, h: torch.Tensor, noise_scale: float = 0.0) -> torch.Tensor:
        cols, offset = [], 0
        for logp, size in zip(self(h), self.sizes):
            cls = logp.argmax(-1) if noise_scale == 0 else torch.distributions.Categorical(logits=logp).sample()
            cols.append(self.tokens[offset + cls])
            offset += size
        return torch.stack(cols, dim=1)


class DigitTextModality(Modality):
    """A digit word [+ speaker] as token ids. ``info``: see :func:`digit_text_info`."""

    name = "digit_text"
    Options = DigitTextOptions
    options: DigitTextOptions

    def __init__(self, options: DigitTextOptions, info: dict[str, Any]) -> None:
        super().__init__(options, info)
        self.tokenizer = wrap(info["tokenizer"])
        self.vocab = self.tokenizer.backend_tokenizer.get_vocab()
        self.digit_ids = [self.vocab[w] for w in info["digits"]]
        self.speaker_ids = [self.vocab[s] for s in info["speakers"]]
        self._words = {i: w for w, i in self.vocab.items()}
        self._digit_class = torch.full((len(self.vocab),), -1, dtype=torch.long)
        self._digit_class[torch.tensor(self.digit_ids)] = torch.arange(10)
        self._speaker_class = torch.full((len(self.vocab),), -1, dtype=torch.long)
        if self.speaker_ids:
            self._speaker_class[torch.tensor(self.speaker_ids)] = torch.arange(len(self.speaker_ids))

    @property
    def with_speaker(self) -> bool:
        return bool(self.info["condition_on_speaker"])

    @property
    def dims(self) -> int:
        return 2 if self.with_speaker else 1

    def prepare(self, value: torch.Tensor, dequantize: bool = True) -> torch.Tensor:
        return value.long()

    def digit_class(self, value: torch.Tensor) -> torch.Tensor:
        """Digit 0-9 of each raw/prepared value (token ids -> class indices)."""
        return self._digit_class.to(value.device)[value[:, 0]]

    def speaker_class(self, value: torch.Tensor) -> torch.Tensor:
        """Speaker 0..S-1 (index in ``info["speakers"]``) of each value that holds one."""
        if not self.with_speaker:
            raise DataError("this condition holds no speaker (pair.condition_on_speaker=false)")
        return self._speaker_class.to(value.device)[value[:, 1]]

    def encoder(self, out_features: int) -> nn.Module:
        return DigitTextEncoder(len(self.vocab), self.dims, self.options.embedding, self.options.hidden, out_features)

    def decoder(self, in_features: int) -> Decoder:
        ids = [self.digit_ids] + ([self.speaker_ids] if self.with_speaker else [])
        return CategoricalDecoder(in_features, self.options.hidden, ids, len(self.vocab))

    # --- users ----------------------------------------------------------------------------
    def token(self, word: str, kind: str, choices: list[str]) -> int:
        """Token id of one digit word or speaker name; DataError with a close match when unknown."""
        ids = self.tokenizer(str(word), add_special_tokens=False)["input_ids"]
        known = f"Known {kind}s: {', '.join(choices)}"
        if len(ids) != 1:
            raise DataError(f"{kind} {word!r}: expected a single word. {known}")
        allowed = self.digit_ids if kind == "digit" else self.speaker_ids
        if ids[0] not in allowed:
            raise DataError(f"unknown {kind} {word!r}.{suggest(str(word).strip().lower(), choices)} {known}")
        return int(ids[0])

    def from_user(self, items: list[Any]) -> torch.Tensor:
        """Each item: ``{"text": "seven", "speaker": "jackson"}`` (the speaker only when the pair
        conditions on it), a digit word or numeral ("seven", "7"), or an int 0-9."""
        rows = []
        for item in items:
            given = dict(item) if isinstance(item, Mapping) else {"text": item}
            unknown = sorted(set(given) - {"text", "speaker", "digit"})
            if unknown:
                raise DataError(f"unknown condition key(s) {', '.join(map(repr, unknown))}; expected 'text' "
                                f"(a digit word) and 'speaker'.{suggest(unknown[0], ['text', 'speaker'])}")
            text = given.get("text", given.get("digit"))
            if text is None:
                raise DataError("no digit given: expected {'text': 'seven', ...}")
            text = str(text).strip()
            if text.isdigit() and len(text) == 1:
                text = self.info["digits"][int(text)]
            row = [self.token(text, "digit", self.info["digits"])]
            if self.with_speaker:
                if given.get("speaker") is None:
                    raise DataError(f"this run conditions on the speaker: give one (--speaker NAME) of "
                                    f"{', '.join(self.info['speakers'])}")
                row.append(self.token(str(given["speaker"]).strip(), "speaker", self.info["speakers"]))
            elif given.get("speaker") is not None:
                raise DataError("this run does not condition on the speaker (pair.condition_on_speaker=false); "
                                "drop the speaker")
            rows.append(row)
        return torch.tensor(rows, dtype=torch.long).reshape(len(rows), self.dims)

    def to_user(self, value: torch.Tensor) -> list[dict[str, str]]:
        out = []
        for row in value.detach().cpu().long().tolist():
            item = {"text": self._words.get(row[0], UNK)}
            if self.with_speaker:
                item["speaker"] = self._words.get(row[1], UNK)
            out.append(item)
        return out

    def demo_spec(self) -> Any:
        """``cmmkit demo``: a box for the digit word (key ``text``) and, when y holds one, a speaker choice."""
        from cmmkit.api import Choice, ModalityDemo, Text

        speaker = (Choice("speaker", tuple(self.info["speakers"]), self.info["speakers"][0], "speaker"),)
        return ModalityDemo(controls=(Text("text", "seven", "digit word (zero ... nine)"),
                                      *(speaker if self.with_speaker else ())))
