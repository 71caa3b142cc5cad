"""Outputs handed to Gradio as files written once, atomically, under a name from their content.

Gradio saves an output given as a PIL image or an array by rewriting ``<cache>/<hash>/image.png``
in place, so two requests with the same output (same condition and seed) can truncate the file
while the other's download reads it (seen as an empty or cut image under concurrent requests).
Given a file path instead, Gradio copies it into its cache with a temporary name and a rename. So
the page writes every image and audio output here first.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from cmmkit.data.download import atomic_write_bytes

#: files older than this (seconds) are removed now and then: Gradio has its copy by then
KEEP_SECONDS = 3600


class OutputFiles:
    """A private folder of content-named output files; :meth:`close` removes it."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="cmmkit-demo-"))
        self._writes = 0
        self._lock = threading.Lock()

    def image(self, image: Any) -> str:
        """A PIL image as a PNG file."""
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return self._write(buf.getvalue(), ".png")

    def audio(self, clip: tuple[int, np.ndarray]) -> str:
        """``(sample_rate, int16 samples)`` as a mono 16-bit WAV file."""
        rate, samples = clip
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(int(rate))
            w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
        return self._write(buf.getvalue(), ".wav")

    def _write(self, data: bytes, suffix: str) -> str:
        path = self.folder / f"{hashlib.sha256(data).hexdigest()[:40]}{suffix}"
        if not path.exists():
            atomic_write_bytes(path, data)
        with self._lock:
            self._writes += 1
            prune = self._writes % 500 == 0
        if prune:
            self.prune()
        return str(path)

    def prune(self, older_than: float = KEEP_SECONDS) -> None:
        cutoff = time.time() - older_than
        for entry in self.folder.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
            except OSError:
                pass

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
