"""Read Multi30k task 1 in its official form: line-aligned, gzipped, one sentence per line.

Why: the official files (``data/task1/raw/{split}.{lang}.gz`` of github.com/multi30k/dataset) are
the only input; errors must name the file and line, because the usual failure is a truncated or
mismatched download. Policy for bad lines (documented in docs/pairs/multi30k_en_de.md):

- the two files of a split differ in line count: error naming both files and both counts;
- an empty line, or a sentence longer than ``max_length`` tokens: in ``train`` the pair is skipped
  and reported in a note (file:line, first five); in ``val``/``test`` it is an error, since skipping
  a reference would silently change BLEU and the bound.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cmmkit.api import DataError, PairDataset, RemoteFile, Specials, encode, pad

DATASET = "multi30k"
UPSTREAM = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw"
SPLITS = {"train": "train", "val": "val"}  # cmmkit split -> file stem; "test" comes from the config


def remote(stem: str, lang: str) -> RemoteFile:
    """The official file ``{stem}.{lang}.gz`` (no published checksum: recorded on download)."""
    name = f"{stem}.{lang}.gz"
    return RemoteFile(filename=name, url=f"{UPSTREAM}/{name}",
                      description=f"Multi30k task 1 {stem} ({lang}), github.com/multi30k/dataset data/task1/raw")


def read_lines(path: Path) -> list[str]:
    """Lines of a gzipped UTF-8 file (a trailing newline does not make an extra line)."""
    try:
        with gzip.open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} as gzipped UTF-8 text ({exc}); delete it to download it again, "
                        "or replace it with the official file") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


@dataclass
class Aligned:
    """Sentence pairs of one split with their 1-based line numbers, and what was left out."""

    source: list[str]
    target: list[str]
    lines: list[int]
    skipped: list[str] = field(default_factory=list)


def read_pairs(src_path: Path, tgt_path: Path, strict: bool) -> Aligned:
    """Aligned (source, target) lines; empty lines are skipped (``strict=False``) or an error."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise DataError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; the files of a split "
                        "must be line-aligned (a truncated download? delete them to download them again)")
    out = Aligned([], [], [])
    for number, (s, t) in enumerate(zip(src, tgt), start=1):
        empty = src_path if not s.strip() else tgt_path if not t.strip() else None
        if empty is not None:
            if strict:
                raise DataError(f"{empty}:{number}: empty line; every sentence of a validation/test split is a "
                                "reference and must be present")
            out.skipped.append(f"{empty.name}:{number} (empty)")
            continue
        out.source.append(s.strip())
        out.target.append(t.strip())
        out.lines.append(number)
    return out


POOL = 4096  # sentences sorted together by length when batching by tokens


class TextPairDataset(PairDataset):
    """Tokenized sentence pairs in memory, padded per batch. Raw values are
    ``{"ids", "mask", "tokenizer"}`` dicts; the raw texts are kept (``target_texts`` are BLEU's
    references)."""

    def __init__(self, source_ids: list[list[int]], target_ids: list[list[int]], source_texts: list[str],
                 target_texts: list[str], fingerprints: tuple[int, int], pad_ids: tuple[int, int]) -> None:
        self.y_ids, self.y_mask = pad(source_ids, pad_ids[0])
        self.x_ids, self.x_mask = pad(target_ids, pad_ids[1])
        self.y_len, self.x_len = self.y_mask.sum(1), self.x_mask.sum(1)
        self.source_texts, self.target_texts = source_texts, target_texts
        self.y_fp, self.x_fp = fingerprints

    #: when set, training batches hold at most this many padded tokens (longest side x sentences)
    #: instead of ``train.batch_size`` sentences (``pair.batch_tokens``)
    batch_tokens: int | None = None

    def __len__(self) -> int:
        return len(self.x_ids)

    def epoch_batches(self, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
        """Batches by token count (``batch_tokens``): a random order, sorted by length within pools of
        ``POOL`` sentences so that a batch's sentences have similar lengths (little padding), cut so that
        sentences x longest side <= ``batch_tokens``, then the batches themselves shuffled. All draws
        come from ``generator``, so the epoch's batches are reproducible (exact resume)."""
        if not self.batch_tokens:
            return super().epoch_batches(batch_size, generator)
        n = len(self)
        order = torch.randperm(n, generator=generator)
        longest = torch.maximum(self.x_len, self.y_len)[order]
        batches: list[torch.Tensor] = []
        for start in range(0, n, POOL):
            pool = order[start:start + POOL]
            ranked = torch.argsort(longest[start:start + POOL], stable=True)
            pool, lengths = pool[ranked], longest[start:start + POOL][ranked].tolist()
            first, widest = 0, 0
            for i, length in enumerate(lengths):
                widest = max(widest, length)
                if (i - first + 1) * widest > self.batch_tokens and i > first:
                    batches.append(pool[first:i])
                    first, widest = i, length
            batches.append(pool[first:])
        shuffle = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in shuffle]

    def __getitem__(self, i: int) -> dict[str, dict[str, torch.Tensor]]:
        return self.get_batch(torch.tensor([i]))

    def get_batch(self, indices: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        return {"x": self._side(self.x_ids, self.x_mask, self.x_len, self.x_fp, indices),
                "y": self._side(self.y_ids, self.y_mask, self.y_len, self.y_fp, indices)}

    @staticmethod
    def _side(ids: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor, fp: int,
              indices: torch.Tensor) -> dict[str, torch.Tensor]:
        n = int(lengths[indices].max()) if len(indices) else 1
        return {"ids": ids[indices, :n], "mask": mask[indices, :n],
                "tokenizer": torch.full((len(indices),), fp, dtype=torch.long)}


def tokenize_split(aligned: Aligned, tokenizers: tuple[object, object], specials: tuple[Specials, Specials],
                   fingerprints: tuple[int, int], max_length: int, strict: bool,
                   paths: tuple[Path, Path]) -> TextPairDataset:
    """Token ids of a split; pairs with a side over ``max_length`` tokens are skipped
    (``strict=False``, noted in ``aligned.skipped``) or an error naming file and line."""
    src_ids = encode(tokenizers[0], aligned.source, specials[0])
    tgt_ids = encode(tokenizers[1], aligned.target, specials[1])
    keep = []
    for i, (s, t) in enumerate(zip(src_ids, tgt_ids)):
        over = [(p, len(ids)) for p, ids in zip(paths, (s, t)) if len(ids) > max_length]
        if not over:
            keep.append(i)
            continue
        where = ", ".join(f"{p.name}:{aligned.lines[i]} ({n} tokens)" for p, n in over)
        if strict:
            raise DataError(f"{where}: longer than pair.max_length={max_length} tokens (incl. BOS/EOS); "
                            "raise pair.max_length (and pair.x/y.max_positions)")
        aligned.skipped.append(where)
    pick = lambda seq: [seq[i] for i in keep]
    return TextPairDataset(pick(src_ids), pick(tgt_ids), pick(aligned.source), pick(aligned.target), fingerprints,
                           (specials[0].pad, specials[1].pad))
