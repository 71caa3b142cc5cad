"""The spectrogram networks of the ``log_mel`` modality: a 2-D conv encoder and the conv decoder's
per-bin density (optionally with residual refinement blocks). :mod:`cmmkit_fsdd.audio` picks them
(or the temporal, autoregressive and band decoders) from the options."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from cmmkit.api import Decoder, DiagonalGaussian
from cmmkit_fsdd.correlated import TimeCorrelated, bounded_rho
from cmmkit_fsdd.frames import bounded_logvar
from cmmkit_fsdd.temporal import Laplace, per_bin_density

if TYPE_CHECKING:
    from cmmkit_fsdd.audio import LogMelOptions

PADDED = 128  # frames are padded to a power of two for the stride-2 convolutions


def act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class SpectrogramEncoder(nn.Module):
    """(B, mels, frames) normalised log-mel -> (B, out) features (stride-2 2-D convolutions)."""

    def __init__(self, mels: int, base: int, layers: int, out_features: int) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        c_in = 1
        for i in range(layers):
            mods += [nn.Conv2d(c_in, base * 2**i, 4, 2, 1), act()]
            c_in = base * 2**i
        self.conv = nn.Sequential(*mods)
        cells = (mels // 2**layers) * (PADDED // 2**layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c_in * cells, out_features), act())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, PADDED - x.shape[-1]))
        return self.fc(self.conv(x.unsqueeze(1)))


class _Residual(nn.Module):
    """x + conv(act(conv(x))): two 3x3 convolutions at one resolution. The plain decoder renders
    64x126 bins from 4x8 cells with one transposed convolution per octave; these blocks give each
    resolution the depth to draw harmonics and onsets rather than their average."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), act(), nn.Conv2d(channels, channels, 3, 1, 1))
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class GaussianSpectrogramDecoder(Decoder):
    """h -> N(mu, diag(exp(logvar))) over the normalised log-mel bins (transposed convolutions), or a
    :class:`~cmmkit_fsdd.temporal.Laplace` with that variance (``likelihood="laplace"``); with
    ``residual_ar`` that density is the innovation of a residual autoregressive over frames
    (:class:`~cmmkit_fsdd.correlated.TimeCorrelated`). Built with other ``out_channels`` (the band
    decoder's trunk), it only gives features."""

    def __init__(self, in_features: int, mels: int, frames: int, opts: LogMelOptions, out_channels: int = 2) -> None:
        super().__init__()
        self.frames, self.floor, self.ceiling = frames, opts.logvar_floor, opts.logvar_ceiling
        self.likelihood, self.residual_ar = opts.likelihood, opts.residual_ar  # (audio refuses it for bands)
        out_channels += self.residual_ar  # a third map: the residual's correlation with the frame before
        self.h0, self.w0 = mels // 2**opts.layers, PADDED // 2**opts.layers
        self.c0 = opts.base_channels * 2 ** (opts.layers - 1)
        self.fc = nn.Sequential(nn.Linear(in_features, self.c0 * self.h0 * self.w0), act())
        mods: list[nn.Module] = []
        c = self.c0
        for i in reversed(range(opts.layers - 1)):
            mods += [nn.ConvTranspose2d(c, opts.base_channels * 2**i, 4, 2, 1), act()]
            c = opts.base_channels * 2**i
            mods += [_Residual(c) for _ in range(opts.refine_blocks)]
        if opts.refine_blocks:  # full resolution with features, then mean and log-variance per bin
            mods += [nn.ConvTranspose2d(c, c, 4, 2, 1), act()]
            mods += [_Residual(c) for _ in range(opts.refine_blocks)]
            mods.append(nn.Conv2d(c, out_channels, 3, 1, 1))
        else:
            mods.append(nn.ConvTranspose2d(c, out_channels, 4, 2, 1))
        self.deconv = nn.Sequential(*mods)
        if self.residual_ar:  # rho starts at 0: training starts from the factorised density
            last = mods[-1]
            with torch.no_grad():
                (last.weight[2] if isinstance(last, nn.Conv2d) else last.weight[:, 2]).zero_()
                last.bias[2].zero_()

    def features(self, h: torch.Tensor) -> torch.Tensor:
        """(B, out_channels, mels, frames): the stack's output at full resolution (for the 2 default
        channels, the mean and raw log-variance; :mod:`cmmkit_fsdd.bands` reads more as features)."""
        return self.deconv(self.fc(h).view(-1, self.c0, self.h0, self.w0))[..., : self.frames]

    def forward(self, h: torch.Tensor) -> DiagonalGaussian | Laplace | TimeCorrelated:
        out = self.features(h)
        mu, logvar = out[:, 0], bounded_logvar(out[:, 1], self.floor, self.ceiling)
        density = per_bin_density(mu, logvar, self.likelihood)
        if self.residual_ar:
            return TimeCorrelated(density, bounded_rho(out[:, 2]))
        return density
