"""PNG grids of images (written atomically so a viewer never sees half a file)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, padding: int = 2) -> Path:
    """Save uint8 images (N, C, H, W) as one PNG grid with ``nrow`` images per row."""
    path = Path(path)
    grid = make_grid(images.cpu(), nrow=nrow, padding=padding, pad_value=255)
    arr = grid.permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr).save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
