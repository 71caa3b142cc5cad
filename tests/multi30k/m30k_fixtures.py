"""Tiny Multi30k task 1 files in the exact official format: gzipped UTF-8, one sentence per line,
line-aligned across languages, named ``{split}.{lang}.gz``."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

SUBJECTS = {"en": ["A man", "A woman", "Two dogs", "A child", "A girl"],
            "de": ["Ein Mann", "Eine Frau", "Zwei Hunde", "Ein Kind", "Ein Mädchen"],
            "fr": ["Un homme", "Une femme", "Deux chiens", "Un enfant", "Une fille"]}
VERBS = {"en": ["runs", "sits", "plays", "jumps"], "de": ["läuft", "sitzt", "spielt", "springt"],
         "fr": ["court", "est assis", "joue", "saute"]}
PLACES = {"en": ["on the grass.", "in the park.", "on a bench."], "de": ["auf dem Gras.", "im Park.", "auf einer Bank."],
          "fr": ["sur l'herbe.", "dans le parc.", "sur un banc."]}


def sentences(n: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    out: dict[str, list[str]] = {lang: [] for lang in SUBJECTS}
    for _ in range(n):
        s, v, p = rng.randrange(5), rng.randrange(4), rng.randrange(3)
        for lang in out:
            out[lang].append(f"{SUBJECTS[lang][s]} {VERBS[lang][v]} {PLACES[lang][p]}")
    return out


def write(folder: Path, name: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with gzip.open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode("utf-8"))
    return path


def make_multi30k(folder: Path, train: int = 80, val: int = 12, test: int = 10) -> dict[str, dict[str, list[str]]]:
    """Write train/val/test_2016_flickr in en, de, fr; return the sentences per split and language."""
    data = {"train": sentences(train, 0), "val": sentences(val, 1), "test_2016_flickr": sentences(test, 2)}
    for split, langs in data.items():
        for lang, lines in langs.items():
            write(folder, f"{split}.{lang}.gz", lines)
    return data
