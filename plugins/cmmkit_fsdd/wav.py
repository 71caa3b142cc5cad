"""16-bit mono WAV files read and written with the standard library's ``wave`` module, and the
fixed-length log-mel analysis every part of the pair shares.

Why a module of its own: the dataset reader, the ``log_mel`` modality (users' WAV files for
``cmmkit edit``/``infer``) and ``save_outputs`` must agree exactly on the sample format and on the
spectrogram settings, and every malformed file must fail with a :class:`DataError` naming it.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path
from typing import IO, Any

import torch

from cmmkit.api import DataError, atomic_write, require

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2  # bytes: 16-bit PCM
#: every recording is padded with silence (or trimmed) to this many samples (1.0 s) before analysis
NUM_SAMPLES = 8000
N_FFT, HOP, N_MELS = 256, 64, 64
#: frames of a 1.0 s log-mel spectrogram (centred STFT): 1 + 8000 // 64
FRAMES = 1 + NUM_SAMPLES // HOP
#: log(mel power + FLOOR): the log of digital silence
LOG_FLOOR = 1e-5


def read_wav(source: str | Path | IO[bytes], name: str | None = None, *, rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Samples in [-1, 1) (float32, shape (T,)) of a 16-bit mono WAV at ``rate`` Hz. ``source`` is a
    path or a binary file object (e.g. a zip member); ``name`` is used in error messages."""
    label = name or str(source)
    try:
        with wave.open(source if not isinstance(source, Path) else str(source), "rb") as w:  # type: ignore[arg-type]
            channels, width, fr, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            data = w.readframes(frames)
    except (wave.Error, EOFError) as exc:
        raise DataError(f"{label}: not a readable WAV file ({exc}); the header is corrupt or the file is "
                        "truncated. Replace it with the official recording") from None
    except OSError as exc:
        raise DataError(f"{label}: cannot read it ({exc.strerror or exc})") from None
    if channels != 1:
        raise DataError(f"{label}: {channels} channels; expected mono (1 channel) audio")
    if width != SAMPLE_WIDTH:
        raise DataError(f"{label}: {8 * width}-bit samples; expected 16-bit PCM")
    if fr != rate:
        raise DataError(f"{label}: sample rate {fr} Hz; expected {rate} Hz (resample it first)")
    if len(data) != frames * SAMPLE_WIDTH or frames == 0:
        raise DataError(f"{label}: header promises {frames} samples but the file holds {len(data) // 2}; "
                        "the file is truncated or empty")
    return torch.frombuffer(bytearray(data), dtype=torch.int16).float() / 32768.0


def as_16_bit(samples: torch.Tensor) -> torch.Tensor:
    """Float samples as a 16-bit WAV file stores them and :func:`read_wav` reads them back (same device)."""
    return _pcm(samples) / 32768.0


def _pcm(samples: torch.Tensor) -> torch.Tensor:
    """Float samples in [-1, 1] -> the 16-bit integer values, still as floats."""
    return (samples.float().clamp(-1.0, 1.0) * 32767.0).round()


def write_wav(path: Path, samples: torch.Tensor, rate: int = SAMPLE_RATE) -> Path:
    """Write float samples in [-1, 1] as a 16-bit mono WAV (atomically). Returns ``path``."""
    pcm = _pcm(samples.detach().cpu()).to(torch.int16)
    with atomic_write(Path(path), "wb") as handle, wave.open(handle, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(SAMPLE_WIDTH)
        w.setframerate(rate)
        w.writeframes(pcm.numpy().tobytes())
    return Path(path)


def fix_length(samples: torch.Tensor, length: int = NUM_SAMPLES) -> torch.Tensor:
    """Trim to ``length`` samples, or pad with silence at the end."""
    if samples.shape[-1] >= length:
        return samples[..., :length]
    return torch.nn.functional.pad(samples, (0, length - samples.shape[-1]))


class MelAnalysis:
    """Log-mel spectrogram (n_fft 256, hop 64, 64 HTK mels over 0-4 kHz, power 2) of 1.0 s of audio,
    and its approximate inverse (least-squares inverse mel scale, then Griffin-Lim)."""

    def __init__(self) -> None:
        torchaudio = require("torchaudio", "fsdd")  # an extra of this plugin: pip install 'cmmkit[fsdd]'
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP,
                                                        n_mels=N_MELS, f_min=0.0, f_max=SAMPLE_RATE / 2, power=2.0)
        self._inverse: Any = None

    def __call__(self, samples: torch.Tensor) -> torch.Tensor:
        """(..., T) samples -> (..., N_MELS, FRAMES) natural-log mel power, after :func:`fix_length`."""
        if self.mel.spectrogram.window.device != samples.device:
            self.mel = self.mel.to(samples.device)
        with torch.no_grad():
            return torch.log(self.mel(fix_length(samples.float())) + LOG_FLOOR)

    def linear_power(self, log_mel: torch.Tensor) -> torch.Tensor:
        """(B, N_MELS, FRAMES) log-mel -> (B, N_FFT // 2 + 1, FRAMES) STFT power (least-squares
        inverse of the mel filterbank, clamped at 0; on the CPU)."""
        torchaudio = require("torchaudio", "fsdd")
        if self._inverse is None:  # the costly part (a mel filterbank to invert); Griffin-Lim is cheap to build
            self._inverse = torchaudio.transforms.InverseMelScale(n_stft=N_FFT // 2 + 1, n_mels=N_MELS,
                                                                  sample_rate=SAMPLE_RATE, f_min=0.0,
                                                                  f_max=SAMPLE_RATE / 2, driver="gelsd")
        with torch.no_grad():
            power = (torch.exp(log_mel.detach().cpu().float()) - LOG_FLOOR).clamp(min=0.0)
            return self._inverse(power).clamp(min=0.0)

    def invert(self, log_mel: torch.Tensor, iterations: int = 32) -> torch.Tensor:
        """(B, N_MELS, FRAMES) log-mel -> (B, NUM_SAMPLES) waveforms in [-1, 1] (Griffin-Lim phase)."""
        torchaudio = require("torchaudio", "fsdd")
        spec = self.linear_power(log_mel)
        griffin = torchaudio.transforms.GriffinLim(n_fft=N_FFT, hop_length=HOP, power=2.0, n_iter=iterations)
        with torch.no_grad():
            audio = fix_length(griffin(spec))
        peak = audio.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8)
        return torch.where(peak > 0.99, audio / peak * 0.99, audio)


def describe() -> str:
    """One line naming the analysis settings (for docs and notes)."""
    return (f"{SAMPLE_RATE} Hz audio padded/trimmed to {NUM_SAMPLES} samples ({NUM_SAMPLES / SAMPLE_RATE:g} s), "
            f"STFT n_fft {N_FFT} hop {HOP}, {N_MELS} mels -> {N_MELS}x{FRAMES} log-mel "
            f"(log power + {LOG_FLOOR:g}; silence = {math.log(LOG_FLOOR):.1f})")
