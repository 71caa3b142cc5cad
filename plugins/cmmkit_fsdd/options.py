"""Options of the ``log_mel`` modality (``pair.x.*`` of the speech pair): validated once, at the config's
edge; :mod:`cmmkit_fsdd.audio` builds the modality from them and docs/pairs/fsdd_digits_speech.md
describes each with its measurements."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from cmmkit.api import ModalityOptions


class LogMelOptions(ModalityOptions):
    base_channels: int = Field(32, ge=4, description="channels of the first conv layer; doubled per layer")
    layers: int = Field(4, ge=1, le=6, description="stride-2 conv layers (64x128 -> 4x8 with 4)")
    logvar_floor: float = Field(-4.0, description="lower bound of the decoder's per-bin log-variance")
    logvar_ceiling: float | None = Field(None, description="upper bound of the decoder's per-bin log-variance (None: "
                                         "unbounded). A low ceiling keeps the decoder from calling what it cannot "
                                         "predict noise: it must put it in the mean (and z), at a cost to the bound")
    griffin_lim_iterations: int = Field(32, ge=1, description="Griffin-Lim iterations when turning a spectrogram into audio")
    decoder: Literal["conv", "autoregressive", "temporal", "bands"] = Field(
        "conv", description="p(x | z): 'conv' a factorised Gaussian over all bins (2-D transposed convolutions); "
        "'autoregressive' a Gaussian per frame given the frames before it (cmmkit_fsdd.frames); 'temporal' "
        "1-D convolutions over time with the mel bands as channels, encoder and decoder (cmmkit_fsdd.temporal); "
        "'bands' the conv decoder's features plus a head autoregressive over mel bands (cmmkit_fsdd.bands)")
    temporal_channels: int = Field(128, ge=4, description="temporal: channels of the 1-D convolutions")
    latent_positions: int = Field(0, ge=0, description="temporal: read z as this many time positions of "
                                  "latent_dim/positions features each (a time-positional latent); 0: a dense map "
                                  "of z to the first positions (a global latent)")
    refine_blocks: int = Field(0, ge=0, le=4, description="conv decoder: residual 3x3 conv blocks after every "
                               "upsampling stage, and the last stage ends at full resolution with features "
                               "(then a 3x3 conv to mean and log-variance) instead of the 2 output channels; "
                               "0: the plain stack of transposed convolutions")
    likelihood: Literal["gaussian", "laplace"] = Field("gaussian", description="conv and temporal: the per-bin "
                                                       "density (the variance bounds apply to its variance)")
    residual_ar: bool = Field(False, description="conv decoder: the residual x - mean is autoregressive over "
                              "frames (r_t = rho r_{t-1} + e_t, rho per bin from the decoder, e_t the per-bin "
                              "density; cmmkit_fsdd.correlated): samples drift smoothly instead of flickering, "
                              "the likelihood stays exact. It raises the bound but lets the mean drift off the "
                              "data: noise-0 speech falls from ~0.90 to 0.44 on the sixth round's default, sf-r1 (measured)")
    band_context: int = Field(16, ge=1, description="bands: feature maps the conv decoder gives the head (from z)")
    band_channels: int = Field(32, ge=1, description="bands: channels of the autoregressive head")
    band_layers: int = Field(3, ge=1, description="bands: causal convolutions of the head")
    band_kernel: int = Field(3, ge=1, description="bands: bands each causal convolution reads (the current and "
                             "those below)")
    band_time_kernel: int = Field(3, ge=1, description="bands: frames each causal convolution reads (odd, centred)")
    band_input_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="bands: dropout on the bands the head reads, "
                                      "training only (so z, not the bands below, must carry the utterance; the "
                                      "evaluated likelihood is exact)")
    ar_context: int = Field(64, ge=1, description="autoregressive: features per frame of the conditioning from z")
    ar_prenet: int = Field(128, ge=1, description="autoregressive: units of the prenet reading the previous frame")
    ar_hidden: int = Field(256, ge=1, description="autoregressive: GRU state size")
    ar_prenet_dropout: float = Field(0.5, ge=0.0, lt=1.0, description="autoregressive: prenet dropout (training only)")
    ar_frames_per_step: int = Field(1, ge=1, description="autoregressive: frames emitted per step (Tacotron's reduction factor)")
    vocoder: Literal["griffin_lim", "source_filter"] = Field(
        "griffin_lim", description="how spectrograms become audio. 'griffin_lim': x is the log-mel spectrogram, "
        "inverted with Griffin-Lim. 'source_filter': x also holds each frame's log-F0 and voicing, the decoder "
        "generates them from z beside the spectrogram, and a harmonic-plus-noise vocoder voices the spectrogram "
        "(as an envelope) at that pitch (cmmkit_fsdd.pitch)")
    pitch_channels: int = Field(32, ge=4, description="source_filter: channels of the pitch branch of the encoder "
                                "and of the pitch decoder")
    pitch_logvar_floor: float = Field(-6.0, description="source_filter: lower bound of the log-variance of the "
                                      "standardised log-F0 per frame")
    pitch_likelihood: Literal["gaussian", "laplace"] = Field(
        "gaussian", description="source_filter: the density of each frame's standardised log-F0 (laplace: a "
        "bounded gradient in the mean where the tracker jumps an octave, which a Gaussian's quadratic turns "
        "into loss spikes)")
    time_normalise: bool = Field(False, description="source_filter: x is each utterance's speech frames stretched "
                                 "to the full frame count, plus a row with its length, which the decoder generates "
                                 "and the vocoder stretches back to (cmmkit_fsdd.timing): the segments of a word "
                                 "line up across speaking rates")

    @model_validator(mode="after")
    def _time_normalise_needs_the_pitch(self) -> LogMelOptions:
        if self.time_normalise and self.vocoder != "source_filter":
            raise ValueError("time_normalise needs vocoder=source_filter (the length row sits beside the pitch rows); "
                             "with vocoder=griffin_lim also set pair.x.time_normalise=false")
        return self
