"""An autoregressive frame decoder for log-mel spectrograms: p(x | z) = prod_t p(x_t | x_<t, z).

Why: a factorised Gaussian over all 8,064 bins, decoded at its mean, is the average of the
utterances z leaves undecided (harmonics smeared, formant transitions averaged away). Here each
frame x_t (64 normalised mel bins) is a diagonal Gaussian given the frames before it and z, as
Tacotron-style decoders do (teacher forcing in training):

- z -> a conditioning sequence c_1..c_T: linear to ``T/2^L`` frames, then ``L`` stride-2
  ``ConvTranspose1d`` layers over time (the timing of the word comes from z);
- ``frames_per_step`` (r) frames are emitted per step, as Tacotron's reduction factor (r = 2
  halves the sequential steps; the likelihood stays exact: p(x | z) = prod_k p(x_{rk..rk+r-1} | x_<rk, z));
- x_{t-1} -> a prenet (two ReLU layers with dropout while training, which keeps the decoder from
  simply copying the last frame and makes it listen to c_t); the first input is a learned frame;
- a GRU reads [prenet(x_{t-1}), c_t]; a linear map of [GRU state, c_t] gives mu_t and the
  log-variance (``floor + softplus(raw - floor)`` as the conv decoder) of x_t.

``log_prob`` is exact (the sum over frames of the Gaussian log-densities under teacher forcing),
so the bound stays a bound; ``generate`` draws x_t = mu_t + noise * sigma_t * eps frame by frame
from the same distributions (noise 0: each frame is its conditional mean).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cmmkit.api import ConfigError, Decoder, gaussian_log_prob


def bounded_logvar(raw: torch.Tensor, floor: float, ceiling: float | None) -> torch.Tensor:
    """``floor + softplus(raw - floor)`` (above the floor), or with a ceiling
    ``floor + (ceiling - floor) * sigmoid(raw)``: a smooth log-variance in (floor, ceiling)."""
    if ceiling is None:
        return floor + F.softplus(raw - floor)
    return floor + (ceiling - floor) * torch.sigmoid(raw)


def _flat(h: object) -> torch.Tensor:
    """The (B, D) features of a flat latent code (a tensor, or a code object without positions)."""
    features = h if isinstance(h, torch.Tensor) else getattr(h, "features", None)
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        raise ConfigError("the autoregressive log_mel decoder reads a flat latent (B, D); got "
                          f"{tuple(getattr(features, 'shape', ())) or type(h).__name__}")
    return features


class FrameARDecoder(Decoder):
    """h (B, in_features) -> p(x | h) over (B, mels, frames) normalised log-mel, frame by frame."""

    def __init__(self, in_features: int, mels: int, frames: int, *, upsampling: int, context: int,
                 channels: int, prenet: int, hidden: int, prenet_dropout: float, logvar_floor: float,
                 frames_per_step: int = 1, logvar_ceiling: float | None = None) -> None:
        super().__init__()
        if frames % frames_per_step:
            raise ConfigError(f"log_mel: {frames} frames are not a multiple of ar_frames_per_step={frames_per_step}")
        self.mels, self.frames, self.floor, self.r = mels, frames, logvar_floor, frames_per_step
        self.ceiling = logvar_ceiling
        self.steps, step_size = frames // frames_per_step, frames_per_step * mels
        self.t0 = -(-frames // 2**upsampling)
        self.c0 = channels * 2 ** (upsampling - 1)
        self.fc = nn.Sequential(nn.Linear(in_features, self.c0 * self.t0), nn.LeakyReLU(0.2))
        mods: list[nn.Module] = []
        c = self.c0
        for i in reversed(range(upsampling)):
            out = context if i == 0 else channels * 2 ** (i - 1)
            mods += [nn.ConvTranspose1d(c, out, 4, 2, 1), nn.LeakyReLU(0.2)]
            c = out
        self.upsample = nn.Sequential(*mods)
        self.prenet = nn.Sequential(nn.Linear(step_size, prenet), nn.ReLU(), nn.Dropout(prenet_dropout),
                                    nn.Linear(prenet, prenet), nn.ReLU(), nn.Dropout(prenet_dropout))
        self.go = nn.Parameter(torch.zeros(step_size))
        self.rnn = nn.GRU(prenet + frames_per_step * context, hidden, batch_first=True)
        self.out = nn.Linear(hidden + frames_per_step * context, 2 * step_size)

    def context(self, h: torch.Tensor) -> torch.Tensor:
        """(B, steps, frames_per_step * context) conditioning sequence from z."""
        c = self.upsample(self.fc(_flat(h)).view(-1, self.c0, self.t0))
        c = c[..., : self.frames].transpose(1, 2)
        return c.reshape(len(c), self.steps, -1)

    def _steps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, mels, frames) -> (B, steps, frames_per_step * mels): the frames each step emits."""
        return x.transpose(1, 2).reshape(len(x), self.steps, -1)

    def _frames(self, steps: torch.Tensor) -> torch.Tensor:
        return steps.reshape(len(steps), self.frames, self.mels).transpose(1, 2)

    def _params(self, state: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = self.out(torch.cat([state, c], dim=-1)).chunk(2, dim=-1)
        return mu, bounded_logvar(raw, self.floor, self.ceiling)

    def distribution(self, h: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: (mu, logvar), each (B, steps, frames_per_step * mels), of every step's
        frames given the true frames before them (``x``: (B, mels, frames))."""
        steps = self._steps(x)
        previous = torch.cat([self.go.expand(len(steps), 1, -1), steps[:, :-1]], dim=1)
        c = self.context(h)
        states, _ = self.rnn(torch.cat([self.prenet(previous), c], dim=-1))
        return self._params(states, c)

    def log_prob(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.distribution(h, x)
        return gaussian_log_prob(self._steps(x), mu, logvar, event_dims=2)

    def generate(self, h: torch.Tensor, noise_scale: float = 0.0) -> torch.Tensor:
        return self.sample(h, noise_scale)[0]

    def sample(self, h: torch.Tensor, noise_scale: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x (B, mels, frames), mu, logvar (B, steps, frames_per_step * mels)): frames drawn a step
        at a time, x_t = mu_t + noise_scale * sigma_t * eps, each step fed back as the next input."""
        c = self.context(h)
        prev = self.go.expand(len(c), 1, -1)
        state = None
        xs, mus, logvars = [], [], []
        for t in range(self.steps):
            out, state = self.rnn(torch.cat([self.prenet(prev), c[:, t : t + 1]], dim=-1), state)
            mu, logvar = self._params(out, c[:, t : t + 1])
            x_t = mu if noise_scale == 0 else mu + noise_scale * torch.exp(0.5 * logvar) * torch.randn_like(mu)
            xs.append(x_t)
            mus.append(mu)
            logvars.append(logvar)
            prev = x_t
        return self._frames(torch.cat(xs, dim=1)), torch.cat(mus, dim=1), torch.cat(logvars, dim=1)
