"""template_shapes: a tiny synthetic pair to copy. x = 16x16 images, y = two +-1 switches."""

from __future__ import annotations

from typing import Any, Literal

import torch

from cmmkit.api import (
    ImageOptions,
    NamedVectorOptions,
    Pair,
    PairConfig,
    PairData,
    Register,
    TensorPairDataset,
    hookimpl,
    vector_info,
)

__version__ = "0.1.0"


class ShapesConfig(PairConfig):
    name: Literal["template_shapes"] = "template_shapes"
    n: int = 600  # examples: 80% train, 10% val, 10% test
    x: ImageOptions = ImageOptions(base_channels=8, layers=2)
    y: NamedVectorOptions = NamedVectorOptions(hidden=32)


class TemplateShapes(Pair):
    name = "template_shapes"
    description = "16x16 images: a square and a bright background switched by y (template pair)"
    x_modality, y_modality = "image", "named_vector"
    Config = ShapesConfig

    def load(self, config: ShapesConfig, data_dir: Any, *, download: bool = True,  # type: ignore[override]
             progress: bool = True) -> PairData:
        g = torch.Generator().manual_seed(0)  # no files to fetch: the data is drawn, always the same
        y = torch.randint(0, 2, (config.n, 2), generator=g).float() * 2 - 1  # (square?, bright?)
        x = ((y[:, 1] + 2) * 50).view(-1, 1, 1, 1).repeat(1, 3, 16, 16)  # background 50 or 150
        x[:, :, 4:12, 4:12] += (y[:, 0] > 0).view(-1, 1, 1, 1) * 100.0  # the square
        x = (x + torch.rand(x.shape, generator=g) * 5).clamp(0, 255).to(torch.uint8)
        a, b = int(config.n * 0.8), int(config.n * 0.9)
        splits = {"train": TensorPairDataset(x[:a], y[:a]), "val": TensorPairDataset(x[a:b], y[a:b]),
                  "test": TensorPairDataset(x[b:], y[b:])}
        info = {"x": {"channels": 3, "height": 16, "width": 16}, "y": vector_info(["square", "bright"], y[:a])}
        return PairData(splits, info)

    def presets(self) -> dict[str, dict[str, Any]]:
        cmma = {"latent_dim": 8, "prior_hidden": 32, "posterior_hidden": 32, "posterior_y_hidden": 16}
        return {"default": {"train": {"epochs": 3, "batch_size": 32, "optimizer": {"name": "Adam", "lr": 0.002}},
                            "models": {"cmma": {"model": cmma}}}}


@hookimpl
def register_pairs(register: Register) -> None:
    register(TemplateShapes())
