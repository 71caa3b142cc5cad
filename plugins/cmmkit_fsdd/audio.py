"""Speech as a modality: fixed-size log-mel spectrograms with a conv encoder and a Gaussian conv decoder.

Raw values are 1.0 s waveforms (B, 8000) at 8 kHz (so a judge can listen to them with its own
analysis); ``prepare`` turns them into log-mel spectrograms (B, 64 mels, 126 frames, see
:mod:`cmmkit_fsdd.wav`; raw log-mels of that shape are accepted as they are) and normalises each mel
band with the training mean and standard deviation kept in ``info``. The likelihood is a diagonal
Gaussian (or, ``likelihood="laplace"``, a factorised Laplace: :mod:`cmmkit_fsdd.temporal`) over the
normalised bins with a learned per-bin variance bounded below by ``logvar_floor``
(the padded silence is constant, so an unbounded variance would collapse there) and optionally above
by ``logvar_ceiling``; ``decoder="autoregressive"`` uses :mod:`cmmkit_fsdd.frames` instead. Users get :class:`Speech` back: the waveform from the
inverse mel scale plus Griffin-Lim, and the spectrogram it came from.

``vocoder="source_filter"`` (:mod:`cmmkit_fsdd.pitch`) adds two rows after the mel bands, each
frame's standardised log-F0 and its voicing: the encoder reads them, the decoder generates them from z
beside the spectrogram, and ``to_user`` voices the spectrogram at that pitch with a
harmonic-plus-noise vocoder instead of Griffin-Lim. Raw values must then be waveforms (a spectrogram
has lost its pitch). ``time_normalise`` (:mod:`cmmkit_fsdd.timing`) stretches each utterance's speech
to the full frame count and adds its length. The options live in :mod:`cmmkit_fsdd.options`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cmmkit.api import (
    ConfigError,
    DataError,
    Decoder,
    Modality,
)
from cmmkit_fsdd import timing, wav
from cmmkit_fsdd.options import LogMelOptions
from cmmkit_fsdd.pitch import (
    F0_MAX,
    F0_MIN,
    PITCH_ROWS,
    SourceFilterDecoder,
    SourceFilterEncoder,
    pitch_track,
    smooth_pitch,
    synthesise,
)
from cmmkit_fsdd.plot import plot_grid
from cmmkit_fsdd.spectrogram import GaussianSpectrogramDecoder, SpectrogramEncoder

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Speech:
    """One generated (or read) utterance: ``waveform`` (T,) in [-1, 1] at ``sample_rate`` Hz and the
    log-mel spectrogram (mels, frames) it was made from."""

    waveform: torch.Tensor
    log_mel: torch.Tensor
    sample_rate: int = wav.SAMPLE_RATE
    #: F0 in Hz and voicing in [0, 1] per frame, when the modality models the pitch (else None)
    f0: torch.Tensor | None = None
    voiced: torch.Tensor | None = None

    def save(self, path: str | Path) -> Path:
        return wav.write_wav(Path(path), self.waveform, self.sample_rate)


class LogMelModality(Modality):
    """Log-mel spectrograms of fixed-length speech. ``info``: mels, frames, sample rate, samples,
    and the per-band training ``mean``/``std`` used for normalisation."""

    name = "log_mel"
    Options = LogMelOptions
    options: LogMelOptions

    def __init__(self, options: LogMelOptions, info: dict[str, Any]) -> None:
        super().__init__(options, info)
        self._mean = torch.tensor(info["mean"], dtype=torch.float32).view(-1, 1)
        self._std = torch.tensor(info["std"], dtype=torch.float32).view(-1, 1)
        self._analysis: wav.MelAnalysis | None = None
        self._silence: torch.Tensor | None = None

    @property
    def analysis(self) -> wav.MelAnalysis:
        if self._analysis is None:
            self._analysis = wav.MelAnalysis()
        return self._analysis

    @property
    def pitched(self) -> bool:
        """True when x holds the pitch rows (``vocoder=source_filter``)."""
        return self.options.vocoder == "source_filter"

    @property
    def mels(self) -> int:
        return int(self.info["mels"])

    @property
    def time_normalised(self) -> bool:
        """True when x is time-normalised with a length row (``time_normalise``)."""
        return self.options.time_normalise

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, frames) of a prepared example: the mel bands, plus log-F0 and voicing when pitched,
        plus the length row when time-normalised."""
        rows = self.mels + (PITCH_ROWS if self.pitched else 0) + (1 if self.time_normalised else 0)
        return rows, int(self.info["frames"])

    def _length_stats(self) -> tuple[float, float]:
        if "log_frames_mean" not in self.info:
            raise ConfigError("log_mel: time_normalise needs the training length statistics in the modality's "
                              "info (log_frames_mean, log_frames_std); this run was made before they existed")
        return float(self.info["log_frames_mean"]), float(self.info["log_frames_std"])

    def _time_normalise(self, x: torch.Tensor, waveforms: torch.Tensor) -> torch.Tensor:
        """Absolute-time prepared rows (B, mels + 2, frames) of ``waveforms`` -> time-normalised, with
        the length row appended (:mod:`cmmkit_fsdd.timing`)."""
        mean, std = self._length_stats()
        lengths = timing.speech_frames(waveforms, x.shape[-1]).to(x.device)
        stretched = timing.to_common_length(x, lengths, nearest_rows=(self.mels + 1,))
        row = ((torch.log(lengths.float()) - mean) / std).view(-1, 1, 1).expand(-1, 1, x.shape[-1])
        return torch.cat([stretched, row.to(x.dtype)], dim=1)

    def absolute_time(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared values as the vocoder reads them: time-normalised ones stretched back to their length
        row's length and padded with silence (the length row dropped); others as they are."""
        if not self.time_normalised:
            return x
        mean, std = self._length_stats()
        rows, frames = self.mels + PITCH_ROWS, x.shape[-1]
        lengths = timing.lengths_of(x[:, rows], mean, std, frames)
        return timing.to_lengths(x[:, :rows].float(), lengths, self.silent_frame.to(x.device),
                                 nearest_rows=(self.mels + 1,))

    @property
    def silent_frame(self) -> torch.Tensor:
        """(rows,) the prepared absolute-time value of a silent frame (a pitch track: computed once)."""
        if self._silence is None:
            self._silence = self.prepare_absolute(torch.zeros(1, int(self.info["num_samples"])))[0, :, -1]
        return self._silence

    def _pitch_stats(self) -> tuple[float, float]:
        if "log_f0_mean" not in self.info:
            raise ConfigError("log_mel: vocoder=source_filter needs the training log-F0 statistics in the "
                              "modality's info (log_f0_mean, log_f0_std); this run was made before they existed: "
                              "train it again")
        return float(self.info["log_f0_mean"]), float(self.info["log_f0_std"])

    def pitch_rows(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Waveforms (B, samples) -> the pitch rows (B, 2, frames): standardised log-F0 and voicing
        (:func:`~cmmkit_fsdd.pitch.pitch_track` then :func:`~cmmkit_fsdd.pitch.smooth_pitch`)."""
        mean, std = self._pitch_stats()
        log_f0, voiced = smooth_pitch(*pitch_track(waveforms.float()))
        return torch.stack([(log_f0 - mean) / std, voiced], dim=1)

    def pitch_of(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepared values -> (F0 in Hz, voicing in [0, 1]), each (B, frames)."""
        mean, std = self._pitch_stats()
        rows = x.detach().float()[:, self.mels :]
        f0 = torch.exp(rows[:, 0] * std + mean).clamp(F0_MIN, F0_MAX)
        return f0, rows[:, 1].clamp(0.0, 1.0)

    @property
    def dims(self) -> int:
        """Values with a density (bits per dimension divide by it): the length row of time-normalised
        speech repeats one value, whose density is read once."""
        rows, frames = self.shape
        return (rows - 1) * frames + 1 if self.time_normalised else rows * frames

    def prepare(self, value: torch.Tensor, dequantize: bool = True) -> torch.Tensor:
        """Raw waveforms (B, samples) -> log-mel (the shared analysis), or raw log-mel (B, mels,
        frames) as is -> per-band standardised (continuous data: nothing to dequantize). Pitched,
        the waveforms' pitch rows follow the mel rows; raw values must then be waveforms (a
        spectrogram has lost the pitch the rows need)."""
        if value.dim() == 2:
            x = self.prepare_absolute(value)
            return self._time_normalise(x, value) if self.time_normalised else x
        if self.pitched:
            raise DataError(f"log_mel with vocoder=source_filter reads waveforms (B, samples); got a "
                            f"{tuple(value.shape)} tensor (a spectrogram has no pitch track)")
        return (value.float() - self._mean.to(value.device)) / self._std.to(value.device)

    def prepare_absolute(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Waveforms (B, samples) -> standardised log-mel rows (plus the pitch rows when pitched), in
        absolute time whatever ``time_normalise`` says."""
        mel = self.analysis(waveforms)
        mel = (mel.float() - self._mean.to(waveforms.device)) / self._std.to(waveforms.device)
        return torch.cat([mel, self.pitch_rows(waveforms)], dim=1) if self.pitched else mel

    def unnormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared values back to natural-log mel power (the mel rows only, when pitched)."""
        x = x.detach().float()[..., : self.mels, :]
        return x * self._std.to(x.device) + self._mean.to(x.device)

    def _mels(self) -> int:
        """The number of mel bands, checked against the conv stack's downsampling."""
        mels = self.mels
        if mels % 2**self.options.layers:
            raise ConfigError(f"log_mel: {mels} mels must be divisible by 2**layers (layers={self.options.layers})")
        return mels

    def encoder(self, out_features: int) -> nn.Module:
        if self.options.decoder == "temporal":
            from cmmkit_fsdd.temporal import TemporalEncoder

            net: nn.Module = TemporalEncoder(self.mels, self.options.temporal_channels, out_features)
        else:
            net = SpectrogramEncoder(self._mels(), self.options.base_channels, self.options.layers, out_features)
        if self.pitched:
            return SourceFilterEncoder(net, self.mels, out_features, self.options.pitch_channels,
                                       rows=self.shape[0] - self.mels)
        return net

    def decoder(self, in_features: int) -> Decoder:
        spectrogram = self._spectrogram_decoder(in_features)
        if not self.pitched:
            return spectrogram
        return SourceFilterDecoder(spectrogram, in_features, self.mels, int(self.info["frames"]),
                                   self.options.pitch_channels, self.options.pitch_logvar_floor,
                                   duration=self.time_normalised, likelihood=self.options.pitch_likelihood)

    def _spectrogram_decoder(self, in_features: int) -> Decoder:
        o = self.options
        if o.likelihood != "gaussian" and o.decoder == "autoregressive":
            raise ConfigError(f"log_mel: likelihood={o.likelihood!r} needs decoder=conv, temporal or bands")
        if o.residual_ar and o.decoder != "conv":
            raise ConfigError(f"log_mel: residual_ar needs decoder=conv, got decoder={o.decoder!r}")
        if o.decoder == "bands":
            from cmmkit_fsdd.bands import BandARDecoder

            if o.band_time_kernel % 2 == 0:
                raise ConfigError(f"log_mel: band_time_kernel must be odd (centred in time), got {o.band_time_kernel}")
            trunk = GaussianSpectrogramDecoder(in_features, self._mels(), self.shape[1], o, out_channels=o.band_context)
            return BandARDecoder(trunk, self._mels(), self.shape[1], o)
        if o.decoder == "temporal":
            from cmmkit_fsdd.temporal import TemporalDecoder

            return TemporalDecoder(in_features, self.mels, self.shape[1], channels=o.temporal_channels,
                                   positions=o.latent_positions, logvar_floor=o.logvar_floor,
                                   logvar_ceiling=o.logvar_ceiling, likelihood=o.likelihood)
        if o.decoder == "autoregressive":
            from cmmkit_fsdd.frames import FrameARDecoder

            return FrameARDecoder(in_features, self.mels, self.shape[1], upsampling=o.layers, context=o.ar_context,
                                  channels=o.base_channels, prenet=o.ar_prenet, hidden=o.ar_hidden,
                                  prenet_dropout=o.ar_prenet_dropout, logvar_floor=o.logvar_floor,
                                  logvar_ceiling=o.logvar_ceiling,
                                  frames_per_step=o.ar_frames_per_step)
        return GaussianSpectrogramDecoder(in_features, self._mels(), self.shape[1], o)

    # --- users ----------------------------------------------------------------------------
    def from_user(self, items: list[Any]) -> torch.Tensor:
        """WAV files (16-bit mono 8 kHz), :class:`Speech` objects or 1-D sample tensors -> raw
        waveforms (B, samples), 1 s each (padded with silence or trimmed)."""
        out = []
        for item in items:
            if isinstance(item, (str, Path)):
                samples = wav.read_wav(Path(item), rate=int(self.info["sample_rate"]))
            elif isinstance(item, Speech):
                samples = item.waveform
            elif isinstance(item, torch.Tensor) and item.dim() == 1:
                samples = item
            else:
                raise DataError(f"expected a WAV path, Speech or 1-D sample tensor, got {type(item).__name__}")
            out.append(wav.fix_length(samples.float()))
        waveforms = torch.stack(out)
        if self.time_normalised:  # the length is measured to the last sound: a noise floor must not count
            waveforms, removed = timing.trim_trailing_sound(waveforms)
            for item, seconds in zip(items, removed.tolist()):
                if seconds >= 0.05:
                    log.info("%s: %.2f s of sound more than %g dB below its loudest part, after it, taken as silence",
                             item if isinstance(item, (str, Path)) else "input", seconds, timing.TRAILING_DB)
        return waveforms

    def to_user(self, value: torch.Tensor) -> list[Speech]:
        """Prepared values -> :class:`Speech`: back in absolute time (a time-normalised x), the waveform
        (source-filter for a pitched x, else Griffin-Lim) and the log-mel spectrogram."""
        value = self.absolute_time(value)
        log_mel = self.unnormalise(value).cpu()
        rate = int(self.info["sample_rate"])
        if self.pitched:
            f0, voiced = self.pitch_of(value.cpu())
            audio = synthesise(log_mel, f0, voiced, self.analysis, rate)
            return [Speech(a, m, rate, f, v) for a, m, f, v in zip(audio, log_mel, f0, voiced)]
        audio = self.analysis.invert(log_mel, self.options.griffin_lim_iterations)
        return [Speech(a, m, rate) for a, m in zip(audio, log_mel)]

    def save_outputs(self, items: list[Any], path: Path, columns: int = 1, labels: list[str] | None = None,
                     column_labels: list[str] | None = None) -> list[Path]:
        """``path.wav`` (one output) or ``stem_0.wav``, ``stem_1.wav``... (several), plus ``stem.png``:
        their spectrograms in a grid, ``columns`` per row, each row labelled."""
        path = Path(path)
        if path.suffix.lower() != ".wav":
            raise ConfigError(f"{path}: the log_mel modality writes .wav files (plus a spectrogram .png beside them)")
        speech = [s if isinstance(s, Speech) else Speech(s, self.analysis(s)) for s in items]
        if len(speech) == 1:
            written = [speech[0].save(path)]
        else:
            written = [s.save(path.with_name(f"{path.stem}_{i}.wav")) for i, s in enumerate(speech)]
        titles = [p.name for p in written]
        png = path.with_suffix(".png")
        rows = [list(range(i, min(i + columns, len(speech)))) for i in range(0, len(speech), columns)]
        title = None
        if labels and len(labels) == 1:  # a single row's label (often long) becomes the title
            title, labels = labels[0], None
        plot_grid([[self.heard(speech[i]) for i in row] for row in rows], png, row_labels=labels,
                  col_labels=column_labels, cell_titles=[[titles[i] for i in r] for r in rows], title=title)
        return [*written, png]

    def heard(self, speech: Speech) -> torch.Tensor:
        """The log-mel spectrogram to show for ``speech``: the one it was made from, or for voiced
        (pitched) speech the analysis of its waveform, since the vocoder drew its harmonics."""
        return speech.log_mel if speech.f0 is None else self.analysis(speech.waveform)

    def save_preview(self, real: torch.Tensor, generated: torch.Tensor, path: Any) -> bool:
        """Columns of real (top) and generated (bottom) spectrograms, up to 8 examples. Pitched, the
        generated row is the analysis of the vocoded audio (the harmonics are drawn by the vocoder at
        the generated F0, so the decoder's envelope alone would not show what a listener hears)."""
        k = min(8, len(real))
        generated, real = generated[:k].detach(), self.absolute_time(real[:k].detach())
        if self.pitched:
            heard = self.analysis(torch.stack([s.waveform for s in self.to_user(generated)]))
            row, label = [heard[i] for i in range(k)], "generated (vocoded)"
        else:
            row, label = [self.unnormalise(generated[i]).cpu() for i in range(k)], "generated"
        plot_grid([[self.unnormalise(real[i]).cpu() for i in range(k)], row], Path(path), row_labels=["real", label])
        return True

    def demo_spec(self) -> Any:
        """``cmmkit demo``: generated speech as an audio player and its log-mel spectrogram."""
        from cmmkit.api import ModalityDemo, View, audio_clip, heatmap

        floor = math.log(wav.LOG_FLOOR)
        return ModalityDemo(views=(View("audio", "speech", lambda s: audio_clip(s.waveform, s.sample_rate)),
                                   View("image", "log-mel spectrogram",
                                        lambda s: heatmap(self.heard(s), 3, floor))))
