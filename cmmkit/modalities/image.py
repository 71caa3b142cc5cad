"""8-bit RGB images with a convolutional encoder and a Gaussian deconvolutional decoder.

Raw values are uint8 tensors (B, C, H, W). For likelihoods, pixels are dequantized
(x + u) / 256 with u ~ U(0, 1), so the Gaussian density on [0, 1] bounds the discrete likelihood:
log P(pixels) >= log p(dequantized) - D log 256 (Theis et al. 2016). The decoder's per-pixel
log-variance has a floor (``logvar_floor``): an unbounded learned variance collapses onto the
quantisation grid and destabilises training.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional as F

from cmmkit.distributions import DiagonalGaussian
from cmmkit.errors import DataError
from cmmkit.modality import Decoder, Modality, ModalityOptions


class ImageOptions(ModalityOptions):
    base_channels: int = Field(32, ge=4, description="channels of the first conv layer; doubled per layer")
    layers: int = Field(4, ge=1, le=7, description="stride-2 conv layers (64 px -> 4 px with 4)")
    logvar_floor: float = Field(-6.0, description="lower bound of the decoder's per-pixel log-variance")
    learn_variance: bool = Field(True, description="per-pixel learned variance; else fixed at logvar_floor")
    logvar_init: float | None = Field(None, description="the decoder's log-variance at initialisation (the bias of "
                                      "its log-variance outputs; above logvar_floor). None: PyTorch's default init, "
                                      "about 0. A low start makes reconstruction worth z's KL from the first step")

    @model_validator(mode="after")
    def _init_above_floor(self) -> ImageOptions:
        if self.logvar_init is not None and self.logvar_init <= self.logvar_floor:
            raise ValueError(f"logvar_init ({self.logvar_init}) must be above logvar_floor ({self.logvar_floor})")
        return self


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class ConvEncoder(nn.Module):
    def __init__(self, channels: int, size: int, base: int, layers: int, out_features: int) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        c_in = channels
        for i in range(layers):
            c_out = base * 2**i
            mods += [nn.Conv2d(c_in, c_out, 4, 2, 1), _act()]
            c_in = c_out
        self.conv = nn.Sequential(*mods)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c_in * (size // 2**layers) ** 2, out_features), _act())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x * 2.0 - 1.0))


class GaussianImageDecoder(Decoder):
    """z -> N(mu, diag(exp(logvar))) over pixels in [0, 1] (the g network of Fig. 5)."""

    def __init__(self, in_features: int, channels: int, size: int, opts: ImageOptions) -> None:
        super().__init__()
        self.channels, self.opts = channels, opts
        self.start = size // 2**opts.layers
        c = opts.base_channels * 2 ** (opts.layers - 1)
        self.fc = nn.Sequential(nn.Linear(in_features, c * self.start**2), _act())
        self.c0 = c
        mods: list[nn.Module] = []
        for i in reversed(range(opts.layers - 1)):
            mods += [nn.ConvTranspose2d(c, opts.base_channels * 2**i, 4, 2, 1), _act()]
            c = opts.base_channels * 2**i
        out = channels * (2 if opts.learn_variance else 1)
        mods += [nn.ConvTranspose2d(c, out, 4, 2, 1)]
        self.deconv = nn.Sequential(*mods)
        if opts.learn_variance and opts.logvar_init is not None:
            # floor + softplus(raw - floor) = init  <=>  raw = floor + log(expm1(init - floor))
            raw = opts.logvar_floor + math.log(math.expm1(opts.logvar_init - opts.logvar_floor))
            with torch.no_grad():
                mods[-1].bias[channels:].fill_(raw)

    def forward(self, h: torch.Tensor) -> DiagonalGaussian:
        start = self.fc(h).view(-1, self.c0, self.start, self.start)
        if not torch.is_grad_enabled():
            # Without autograd (evaluation, importance sampling, Parzen samples, generation) the
            # transposed convolutions run 1.5-1.7x faster on CPU in channels_last (oneDNN's native
            # layout), with identical values; with autograd the backward pass gains nothing, so
            # training keeps the default layout (benchmarks/eval_throughput.py measures both).
            # The result goes back to the default layout: random draws like randn_like(mu) follow
            # the layout, so sampled images would otherwise differ from training-mode ones.
            start = start.contiguous(memory_format=torch.channels_last)
        # float32 from here on: under train.speed.autocast the convolutions' outputs are bf16, and the
        # sigmoid and softplus of bf16 logits would quantise mu and the log-variance more again
        out = self.deconv(start).contiguous().float()
        mu = torch.sigmoid(out[:, : self.channels])
        floor = self.opts.logvar_floor
        if self.opts.learn_variance:
            logvar = floor + F.softplus(out[:, self.channels :] - floor)
        else:
            logvar = torch.full_like(mu, floor)
        return DiagonalGaussian(mu, logvar, event_dims=3)


class ImageModality(Modality):
    """RGB images of a fixed size. ``info``: ``{"channels": 3, "height": 64, "width": 64}``."""

    name = "image"
    Options = ImageOptions
    options: ImageOptions

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self.info["channels"]), int(self.info["height"]), int(self.info["width"]))

    @property
    def dims(self) -> int:
        return math.prod(self.shape)

    def discrete_log_offset(self) -> float:
        return -self.dims * math.log(256.0)

    def prepare(self, value: torch.Tensor, dequantize: bool = True) -> torch.Tensor:
        # a contiguous (N, C, H, W) copy (a gather from a memory-mapped (N, H, W, C) image cache comes
        # strided), then in place: the same operations as (x + u) / 256 without two temporaries
        x = value.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
        return x.add_(torch.rand_like(x) if dequantize else 0.5).div_(256.0)

    def encoder(self, out_features: int) -> nn.Module:
        c, h, w = self.shape
        if h != w or h % 2**self.options.layers:
            raise ValueError(f"image size {h}x{w} must be square and divisible by 2**layers")
        return ConvEncoder(c, h, self.options.base_channels, self.options.layers, out_features)

    def decoder(self, in_features: int) -> Decoder:
        c, h, _ = self.shape
        return GaussianImageDecoder(in_features, c, h, self.options)

    def from_user(self, items: list[Any]) -> torch.Tensor:
        """Image files or PIL images -> uint8 (B, C, H, W): center-cropped to square and resized."""
        return torch.stack([self._load(item) for item in items])

    def _load(self, item: Any) -> torch.Tensor:
        c, h, w = self.shape
        if isinstance(item, (str, Path)):
            try:
                with Image.open(item) as im:
                    img = im.convert("RGB" if c == 3 else "L")
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{item}: not a readable image ({exc})") from None
            except Image.DecompressionBombError as exc:  # more pixels than PIL decodes safely
                raise DataError(f"{item}: image too large to decode safely ({exc})") from None
        elif isinstance(item, Image.Image):
            img = item.convert("RGB" if c == 3 else "L")
        else:
            raise DataError(f"expected an image path or PIL image, got {type(item).__name__}")
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((w, h), Image.BICUBIC)
        arr = np.asarray(img, dtype=np.uint8).reshape(h, w, c)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)

    def save_preview(self, real: torch.Tensor, generated: torch.Tensor, path: Any) -> bool:
        """Rows of 8: real images, then the images generated from their conditioning values."""
        from cmmkit.images import save_grid

        per_row = min(8, len(real))
        rows = []
        for start in range(0, len(real) - per_row + 1, per_row):
            rows += [to_uint8(real[start:start + per_row]), to_uint8(generated[start:start + per_row])]
        save_grid(torch.cat(rows), path, nrow=per_row)
        return True

    def save_outputs(self, items: list[Any], path: Path, columns: int = 1, labels: list[str] | None = None,
                     column_labels: list[str] | None = None) -> list[Path]:
        """One PNG/JPG: ``columns`` images per row, each row labelled with its condition (a single
        row's label becomes the title)."""
        from cmmkit.images import labelled_grid, save_image

        rows = [items[i:i + columns] for i in range(0, len(items), columns)]
        title = None
        if labels and len(labels) == 1:
            title, labels = labels[0], None
        return [save_image(labelled_grid(rows, row_labels=labels, col_labels=column_labels, title=title), path)]

    def to_user(self, value: torch.Tensor) -> list[Image.Image]:
        arr = to_uint8(value).permute(0, 2, 3, 1).cpu().numpy()
        return [Image.fromarray(a.squeeze(-1) if a.shape[-1] == 1 else a) for a in arr]

    def demo_spec(self) -> Any:
        """``cmmkit demo``: outputs are shown as images; users may upload one (any size, cropped and
        resized by :meth:`from_user`) to edit it or infer its condition."""
        from cmmkit.demo.spec import ModalityDemo, View

        return ModalityDemo(views=(View("image", "image"),), upload="image")


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Prepared images in [0, 1] -> uint8 pixels."""
    return (x.detach().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
