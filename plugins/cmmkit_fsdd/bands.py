"""A decoder autoregressive over mel bands: p(x | z) = prod_f p(x_f | x_<f, z), every frame at once.

Why (docs/pairs/fsdd_digits_speech.md, "Fourth round"): every factorised decoder measured renders
the low mel bands smooth. Speech's harmonics are stripes a few bands apart whose spacing follows the
pitch; a per-bin median of a stripe whose position z leaves slightly uncertain is a smear. Putting
a real recording's lowest 20 bands under a decoder's reconstruction lifts the speech judge from 0.81
to 0.98, so the digit is lost there, and an autoencoder with z unpenalised (890 nats) smears them
just as much: it is the factorised rendering, not the information in z.

Here, as PixelVAE does for images (Gulrajani et al. 2017), a small causal network continues the
pattern of the bands below:

- the conv decoder of :mod:`cmmkit_fsdd.audio` maps z to ``band_context`` feature maps at full
  resolution (everything global: timing, envelope, which digit);
- an autoregressive head reads the spectrogram shifted up by one band through ``band_layers``
  convolutions causal in frequency (kernel ``band_kernel`` bands below and including the current
  one, ``band_time_kernel`` frames centred in time; ``band_input_dropout`` drops bins of that input
  while training) with the z features added at every layer, so
  band f sees the bands below it (up to ``1 + band_layers * (band_kernel - 1)``) of every nearby
  frame and never itself or the bands above;
- a 1x1 convolution of [head, z features] gives the location and the bounded log-variance of each
  bin, a Laplace (or Gaussian) as the conv decoder.

``log_prob`` is exact (teacher forcing, one parallel pass), so the bound stays a bound. ``generate``
decodes band by band from the lowest, each band drawn as location + noise * scale * eps (noise 0:
the location, the conditional median given the bands already drawn), evaluating the head only on
the window of bands its receptive field reaches. The head's small receptive field is deliberate: it
can continue a stripe, not carry the word, so z keeps the content (PixelVAE's remedy for the
decoder that ignores z, as :mod:`cmmkit_fsdd.frames` did).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from cmmkit.api import Decoder, DiagonalGaussian
from cmmkit_fsdd.frames import bounded_logvar
from cmmkit_fsdd.temporal import Laplace, per_bin_density


class _CausalBandConv(nn.Module):
    """A 2-D convolution over (bands, frames) whose output at band f reads input bands f-k+1..f."""

    def __init__(self, c_in: int, c_out: int, k: int, kt: int) -> None:
        super().__init__()
        self.k, self.kt = k, kt
        self.conv = nn.Conv2d(c_in, c_out, (k, kt))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.kt // 2, self.kt // 2, self.k - 1, 0)))


class BandARDecoder(Decoder):
    """h (B, in_features) -> p(x | h) over (B, mels, frames) normalised log-mel, band by band."""

    def __init__(self, trunk: nn.Module, mels: int, frames: int, opts: Any) -> None:
        """``trunk``: z -> ``trunk.features(h)`` of shape (B, ``opts.band_context``, mels, frames) (the
        log_mel modality passes its conv decoder built with that many output channels)."""
        super().__init__()
        self.mels, self.frames = mels, frames
        self.floor, self.ceiling, self.likelihood = opts.logvar_floor, opts.logvar_ceiling, opts.likelihood
        c, cz, k, kt = opts.band_channels, opts.band_context, opts.band_kernel, opts.band_time_kernel
        self.trunk = trunk
        self.x_in = _CausalBandConv(1, c, k, kt)
        self.z_in = nn.ModuleList([nn.Conv2d(cz, c, 1) for _ in range(opts.band_layers)])
        self.convs = nn.ModuleList([_CausalBandConv(c, c, k, kt) for _ in range(opts.band_layers - 1)])
        self.out = nn.Conv2d(c + cz, 2, 1)
        self.input_dropout = nn.Dropout(opts.band_input_dropout)
        #: input bands a band's parameters depend on (the shift by one, then k-1 per causal conv)
        self.reach = 1 + opts.band_layers * (k - 1)

    def _head(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of every bin of ``x`` (B, bands, frames) given the bands below it and ``cond``
        (B, band_context, bands, frames), the z features of the same bands."""
        shifted = self.input_dropout(F.pad(x, (0, 0, 1, 0))[:, :-1].unsqueeze(1))  # band f holds x_{f-1}
        h = F.leaky_relu(self.x_in(shifted) + self.z_in[0](cond), 0.2)
        for conv, z_in in zip(self.convs, self.z_in[1:]):
            h = F.leaky_relu(h + conv(h) + z_in(cond), 0.2)
        mu, raw = self.out(torch.cat([h, cond], dim=1)).unbind(1)
        return mu, bounded_logvar(raw, self.floor, self.ceiling)

    def distribution(self, h: torch.Tensor, x: torch.Tensor) -> DiagonalGaussian | Laplace:
        """Teacher forcing: every bin's density given the true bands below it (one parallel pass)."""
        return per_bin_density(*self._head(x, self.trunk.features(h)), self.likelihood)

    def log_prob(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.distribution(h, x).log_prob(x)

    @torch.no_grad()
    def generate(self, h: torch.Tensor, noise_scale: float = 0.0) -> torch.Tensor:
        """Bands drawn from the lowest up: x_f = location_f + noise_scale * scale_f * eps."""
        cond = self.trunk.features(h)
        x = cond.new_zeros(len(cond), self.mels, self.frames)
        for f in range(self.mels):
            lo = max(0, f - self.reach)  # the window of bands band f's parameters can reach
            mu, logvar = self._head(x[:, lo : f + 1], cond[:, :, lo : f + 1])
            row = per_bin_density(mu[:, -1:], logvar[:, -1:], self.likelihood).rsample(noise_scale)
            x[:, f] = row[:, 0]
        return x
