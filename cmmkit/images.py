"""PNG grids of images, plain or labelled (written atomically so a viewer never sees half a file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.utils import make_grid


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, padding: int = 2) -> Path:
    """Save uint8 images (N, C, H, W) as one PNG grid with ``nrow`` images per row."""
    arr = make_grid(images.cpu(), nrow=nrow, padding=padding, pad_value=255).permute(1, 2, 0).numpy()
    return save_image(Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr), path)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def labelled_grid(cells: list[list[Image.Image]], row_labels: list[str] | None = None,
                  col_labels: list[str] | None = None, title: str | None = None, scale: int = 2,
                  pad: int = 4) -> Image.Image:
    """A table of images (rows of PIL images, all the same size) with row and column labels and a
    title, upscaled ``scale`` times (nearest) so that 64-pixel faces are visible at a glance."""
    from PIL import ImageDraw

    if not cells or not cells[0]:
        raise ValueError("labelled_grid: no images")
    w, h = cells[0][0].width * scale, cells[0][0].height * scale
    font = _font(max(11, h // 8))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = lambda t: int(probe.textlength(t, font=font))
    line_h = int(font.size if hasattr(font, "size") else 11) + 6
    left = max((text_w(t) for t in row_labels or []), default=0) + (2 * pad if row_labels else 0)
    top = (line_h if col_labels else 0) + (line_h + pad if title else 0)
    ncol = max(len(r) for r in cells)
    canvas = Image.new("RGB", (left + ncol * (w + pad) + pad, top + len(cells) * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, pad), title, fill="black", font=font)
    for j, label in enumerate(col_labels or []):
        x0 = left + pad + j * (w + pad)
        draw.text((x0 + max(0, (w - text_w(label)) // 2), top - line_h + 2), _fit(label, w, text_w), fill="black",
                  font=font)
    for i, row in enumerate(cells):
        y0 = top + pad + i * (h + pad)
        if row_labels:
            draw.text((pad, y0 + h // 2 - line_h // 2), row_labels[i], fill="black", font=font)
        for j, im in enumerate(row):
            canvas.paste(im.convert("RGB").resize((w, h), Image.NEAREST), (left + pad + j * (w + pad), y0))
    return canvas


def _fit(label: str, width: int, text_w: Any) -> str:
    while len(label) > 3 and text_w(label) > width:
        label = label[:-2] + "…"
    return label


def stack(images: list[Image.Image], pad: int = 8) -> Image.Image:
    """Panels one under the other on a white background."""
    width = max(im.width for im in images)
    canvas = Image.new("RGB", (width, sum(im.height for im in images) + pad * (len(images) - 1)), "white")
    y = 0
    for im in images:
        canvas.paste(im, (0, y))
        y += im.height + pad
    return canvas


def save_image(image: Image.Image, path: str | Path) -> Path:
    """Write a PIL image atomically (format from the suffix); a clear error if the path cannot be
    written."""
    from cmmkit.errors import ConfigError

    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    formats = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG"}
    if suffix not in formats:
        raise ConfigError(f"{path}: expected a .png or .jpg output path")
    from cmmkit.data.download import atomic_write

    try:
        with atomic_write(path, "wb") as handle:
            image.save(handle, format=formats[suffix])
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write there ({exc.strerror or exc})") from None
    return path
