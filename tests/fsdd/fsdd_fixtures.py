"""Tiny Free Spoken Digit Dataset copies in the official layout: recordings/<digit>_<speaker>_<index>.wav,
8 kHz mono 16-bit, one tone per digit (so a classifier can tell digits apart)."""

from __future__ import annotations

import math
import struct
import wave
import zipfile
from pathlib import Path
from typing import Any

SPEAKERS = ("jackson", "theo")


def tone(digit: int, speaker: int, index: int, rate: int = 8000, seconds: float = 0.4) -> bytes:
    """16-bit PCM of a tone whose pitch encodes the digit (and slightly the speaker)."""
    freq = 300.0 + 300.0 * digit + 40.0 * speaker + 5.0 * (index % 3)
    n = int(rate * seconds)
    return b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * t / rate) * (1 - t / n)))
                    for t in range(n))


def write_wav(path: Path, pcm: bytes, rate: int = 8000, channels: int = 1, width: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


def make_fsdd(folder: Path, indices: range = range(14), digits: range = range(10)) -> Path:
    """``folder/recordings`` with indices 0-4 (test), 5-9 (val), 10+ (train) per digit and speaker."""
    rec = folder / "recordings"
    for d in digits:
        for s, speaker in enumerate(SPEAKERS):
            for i in indices:
                write_wav(rec / f"{d}_{speaker}_{i}.wav", tone(d, s, i))
    return rec


def make_release_zip(folder: Path, source: Path) -> Path:
    """The release zip layout: free-spoken-digit-dataset-1.0.10/recordings/*.wav."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "free-spoken-digit-dataset-1.0.10.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for wav in sorted(source.glob("*.wav")):
            zf.write(wav, f"free-spoken-digit-dataset-1.0.10/recordings/{wav.name}")
    return path


def train_tiny(tmp_path: Path, sets: list[str], name: str = "run") -> tuple[Any, Any, list[Any]]:
    """A tiny CMMA trained on a 3-digit fixture with extra ``--set`` values (a decoder under test);
    returns the run, its data and two utterances generated from one condition at noise 1."""
    from cmmkit.config import build_config
    from cmmkit.runs import train

    make_fsdd(tmp_path / "data", indices=range(11), digits=range(3))
    cfg = build_config("fsdd_digits_speech", preset="tiny", sets=[f"data.data_dir={tmp_path / 'data'}", *sets])
    run = train(cfg, tmp_path / name, progress=False)
    out = run.generate([{"text": "two", "speaker": "theo"}], n=2, noise_scale=1.0)
    data = run.pair.load(cfg.pair, tmp_path / "data", download=False, progress=False)
    return run, data, out


def val_bound(run: Any, data: Any, n: int = 4) -> Any:
    """The per-example bound of the first ``n`` validation examples (the run's model in eval mode)."""
    import torch

    run.model.eval()
    return run.model.evaluate(run.model.prepare(data.splits["val"].get_batch(torch.arange(n))))["bound"]
