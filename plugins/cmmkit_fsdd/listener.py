"""The honest judge of generated speech: ``speech_judge``, a digit and speaker classifier of waveforms.

It scores what users get, the WAV file, not the model's features:

- its own analysis (:class:`ListenerAnalysis`): 25 ms windows (n_fft 512), 10 ms hop, 40 mel
  bands over 50-3,800 Hz, a floor 50 dB below the utterance's peak and per-utterance
  standardisation; cmmkit's model sees n_fft 256, hop 8 ms, 64 bands over 0-4 kHz, normalised per
  band with training statistics. Gain and the level of the silence do not reach the classifier;
- trained only on the real training recordings, with augmentation (:func:`augment`: gain,
  time shift, leading silence padding, mild noise) so that it recognises speech, not one recording
  setup; it never sees cmmkit's analysis, Griffin-Lim or generated audio;
- a convolutional network pooled over time (:class:`ListenerNet`), so where the word sits in the
  second does not matter; two heads, the digit and the speaker ("same recipe");
- it refuses audio at another sample rate or with another number of channels
  (:meth:`SpeechJudge.waveforms`): it was trained on 8 kHz mono and says so.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F

from cmmkit.api import ConditionalModel, ConfigError, DataError, Modality, ModelConfig, Value
from cmmkit_fsdd import wav


class ListenerAnalysis(nn.Module):
    """(B, T) waveforms at 8 kHz -> (B, 40, 101) log-mel, standardised per utterance.

    Deliberately unlike :class:`cmmkit_fsdd.wav.MelAnalysis` (the model's): other window, hop, band
    count and range; the log floor is relative to each utterance's peak (50 dB below it), and each
    utterance is shifted and scaled to mean 0 and standard deviation 1."""

    N_FFT, WIN, HOP, N_MELS, F_MIN, F_MAX = 512, 200, 80, 40, 50.0, 3800.0
    DYNAMIC_RANGE_DB = 50.0

    def __init__(self) -> None:
        super().__init__()
        import torchaudio

        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=wav.SAMPLE_RATE, n_fft=self.N_FFT, win_length=self.WIN, hop_length=self.HOP,
            n_mels=self.N_MELS, f_min=self.F_MIN, f_max=self.F_MAX, power=2.0, mel_scale="slaney", norm="slaney")

    @property
    def frames(self) -> int:
        return 1 + wav.NUM_SAMPLES // self.HOP

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        power = self.mel(wav.fix_length(samples.float()))
        peak = power.flatten(1).amax(dim=1).view(-1, 1, 1)
        log = torch.log(power + peak * 10 ** (-self.DYNAMIC_RANGE_DB / 10) + 1e-12)
        mean = log.mean(dim=(1, 2), keepdim=True)
        std = log.std(dim=(1, 2), keepdim=True)
        return (log - mean) / (std + 1e-5)


class AugmentOptions(BaseModel):
    """Training-time augmentation of real recordings (each example drawn independently)."""

    model_config = ConfigDict(extra="forbid")
    gain_db: tuple[float, float] = Field((-18.0, 6.0), description="uniform gain range in dB (clipped to [-1, 1])")
    shift_s: tuple[float, float] = Field((-0.05, 0.3), description="time shift in seconds: positive pads silence "
                                         "in front, negative cuts the start")
    noise_probability: float = Field(0.8, ge=0.0, le=1.0, description="chance of adding white noise")
    snr_db: tuple[float, float] = Field((15.0, 45.0), description="signal-to-noise ratio of the added noise (dB)")


def augment(samples: torch.Tensor, opts: AugmentOptions, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gain, time shift (leading silence or a cut start, the end padded with silence or cut) and
    white noise at a random SNR, per example of (B, T) waveforms; the length T is kept."""
    b, t = samples.shape
    dev = samples.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, 1, generator=generator).to(dev)

    out = samples * 10 ** (uniform(*opts.gain_db) / 20)
    shifts = (uniform(*opts.shift_s) * wav.SAMPLE_RATE).round().long().squeeze(1)
    idx = torch.arange(t, device=dev).unsqueeze(0) - shifts.unsqueeze(1)
    valid = (idx >= 0) & (idx < t)
    out = torch.where(valid, out.gather(1, idx.clamp(0, t - 1)), torch.zeros_like(out))
    rms = out.pow(2).mean(dim=1, keepdim=True).sqrt().clamp(min=1e-6)
    noise_rms = rms * 10 ** (-uniform(*opts.snr_db) / 20)
    noisy = (torch.rand(b, 1, generator=generator).to(dev) < opts.noise_probability).float()
    out = out + noisy * noise_rms * torch.randn(b, t, generator=generator).to(dev)
    return out.clamp(-1.0, 1.0)


class ListenerNet(nn.Module):
    """(B, mels, frames) -> (B, features): 3 conv blocks (3x3 conv, batch norm, ReLU, 2x2 max pool),
    then the mean and max over time of each channel and band."""

    def __init__(self, mels: int, channels: int, features: int, dropout: float) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        c_in = 1
        for i in range(3):
            c = channels * 2**i
            mods += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.conv = nn.Sequential(*mods)
        self.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c_in * (mels // 8), features), nn.ReLU(),
                                nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.unsqueeze(1))  # (B, C, mels/8, frames/8)
        pooled = torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1).flatten(1)
        return self.fc(pooled)


class SpeechJudgeConfig(ModelConfig):
    name: Literal["speech_judge"] = "speech_judge"
    channels: int = Field(16, ge=1, description="channels of the first conv block (doubled per block)")
    hidden: int = Field(128, ge=1, description="features before the digit and speaker logits")
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    speaker_weight: float = Field(1.0, ge=0.0, description="weight of the speaker cross-entropy in the loss")
    augment: AugmentOptions = AugmentOptions()


class SpeechJudge(ConditionalModel):
    """Digit (10) and, when y holds one, speaker logits of 8 kHz mono waveforms (raw ``log_mel`` x
    values of the pair are waveforms). Trained by ``cmmkit train-judge``; it does not generate."""

    name = "speech_judge"
    Config = SpeechJudgeConfig
    can_generate = False
    config: SpeechJudgeConfig

    def __init__(self, config: SpeechJudgeConfig, x: Modality, y: Modality) -> None:
        super().__init__(config, x, y)
        if not hasattr(y, "digit_class"):
            raise ConfigError(f"speech_judge judges spoken digits: it needs a digit_text condition, not {y.name}")
        if int(x.info.get("sample_rate", 0)) != wav.SAMPLE_RATE:
            raise ConfigError(f"speech_judge listens to {wav.SAMPLE_RATE} Hz audio; this pair's x is "
                              f"{x.info.get('sample_rate')} Hz")
        self.speakers: list[str] = list(y.info.get("speakers", [])) if getattr(y, "with_speaker", False) else []
        self.analysis = ListenerAnalysis()
        self.net = ListenerNet(ListenerAnalysis.N_MELS, config.channels, config.hidden, config.dropout)
        self.digit_head = nn.Linear(config.hidden, 10)
        self.speaker_head = nn.Linear(config.hidden, len(self.speakers)) if self.speakers else None

    # --- scoring ------------------------------------------------------------------------
    def logits(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(digit logits (B, 10), speaker logits (B, S) or None) of (B, T) waveforms at 8 kHz."""
        feats = self.net(self.analysis(samples))
        return self.digit_head(feats), (self.speaker_head(feats) if self.speaker_head is not None else None)

    @staticmethod
    def waveforms(items: list[Any]) -> torch.Tensor:
        """(B, 8000) samples of WAV paths, :class:`~cmmkit_fsdd.audio.Speech` objects or 1-D tensors,
        each padded/trimmed to 1 s. Audio at another sample rate or with more than one channel is
        refused with a :class:`DataError` (the judge only knows 8 kHz mono speech)."""
        out = []
        for item in items:
            if isinstance(item, (str, Path)):
                try:
                    samples = wav.read_wav(Path(item), rate=wav.SAMPLE_RATE)
                except DataError as exc:
                    raise DataError(f"the speech judge listens to 16-bit mono {wav.SAMPLE_RATE} Hz WAVs: {exc}") from None
            elif hasattr(item, "waveform") and hasattr(item, "sample_rate"):
                if int(item.sample_rate) != wav.SAMPLE_RATE:
                    raise DataError(f"the speech judge listens to {wav.SAMPLE_RATE} Hz audio; this one is "
                                    f"{item.sample_rate} Hz (resample it first)")
                samples = item.waveform
            elif isinstance(item, torch.Tensor):
                if item.dim() == 2 and item.shape[0] == 1:
                    item = item[0]
                if item.dim() != 1:
                    raise DataError(f"the speech judge listens to mono audio: expected samples of shape (T,), "
                                    f"got {tuple(item.shape)} ({item.shape[0]} channels?)")
                samples = item
            else:
                raise DataError(f"the speech judge takes WAV paths, Speech objects or 1-D sample tensors, "
                                f"not {type(item).__name__}")
            out.append(wav.fix_length(samples.float()))
        return torch.stack(out)

    @torch.no_grad()
    def predict(self, items: list[Any]) -> list[dict[str, Any]]:
        """Per item: the predicted digit word, its probability, and the speaker (when trained on one)."""
        self.eval()
        digit_logits, speaker_logits = self.logits(self.waveforms(items).to(self.digit_head.weight.device))
        probs = digit_logits.softmax(-1)
        words = self.y.info["digits"]
        out = [{"text": words[int(i)], "p": float(probs[k, i])} for k, i in enumerate(probs.argmax(-1))]
        if speaker_logits is not None:
            for row, s in zip(out, speaker_logits.argmax(-1).tolist()):
                row["speaker"] = self.speakers[s]
        return out

    # --- training -----------------------------------------------------------------------
    def prepare(self, batch: dict[str, Value], dequantize: bool = True) -> dict[str, Value]:
        x = batch["x"]
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            raise DataError("speech_judge trains on waveforms (B, samples); this dataset holds "
                            f"{tuple(getattr(x, 'shape', ()))}-shaped x (log-mel data from an older version?)")
        return {"x": x.float(), "y": batch["y"]}

    def _loss(self, batch: dict[str, Value]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        p = batch  # prepared once by the trainer (prepare above)
        x = augment(p["x"], self.config.augment) if self.training else p["x"]
        digit_logits, speaker_logits = self.logits(x)
        digits = self.y.digit_class(p["y"])  # type: ignore[attr-defined]
        loss = F.cross_entropy(digit_logits, digits, reduction="none")
        speaker_acc = None
        if speaker_logits is not None:
            speakers = self.y.speaker_class(p["y"])  # type: ignore[attr-defined]
            loss = loss + self.config.speaker_weight * F.cross_entropy(speaker_logits, speakers, reduction="none")
            speaker_acc = (speaker_logits.argmax(-1) == speakers).float()
        return loss, (digit_logits.argmax(-1) == digits).float(), speaker_acc

    def training_loss(self, batch: dict[str, Value]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, acc, speaker_acc = self._loss(batch)
        logs = {"accuracy": acc.mean().detach()}
        if speaker_acc is not None:
            logs["speaker_accuracy"] = speaker_acc.mean().detach()
        return loss.mean(), logs

    @torch.no_grad()
    def evaluate(self, batch: dict[str, Value]) -> dict[str, torch.Tensor]:
        loss, acc, speaker_acc = self._loss(batch)
        out = {"cross_entropy": loss, "accuracy": acc}
        if speaker_acc is not None:
            out["speaker_accuracy"] = speaker_acc
        return out

    def generate(self, y: Value, noise_scale: float = 0.0, output_noise: float | None = None) -> Value:
        raise NotImplementedError("a speech_judge classifies speech; it does not generate")


def chance(n: int) -> float:
    """Accuracy of guessing among ``n`` classes."""
    return 1.0 / n if n else math.nan
