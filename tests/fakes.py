"""A synthetic pair registered with ``pm.register`` in fixtures: small, fast, deterministic."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from cmmkit.hookspecs import hookimpl
from cmmkit.modalities import ImageOptions, NamedVectorOptions
from cmmkit.modalities.vector import vector_info
from cmmkit.pair import Pair, PairConfig, PairData, TensorPairDataset


class SynthConfig(PairConfig):
    name: Literal["synthetic"] = "synthetic"
    n: int = 96
    x: ImageOptions = ImageOptions(base_channels=4, layers=2)
    y: NamedVectorOptions = NamedVectorOptions(hidden=16)


def synthetic_tensors(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """16x16 RGB images whose colour and a square depend on 4 +-1 attributes."""
    g = torch.Generator().manual_seed(seed)
    y = torch.where(torch.rand(n, 4, generator=g) > 0.5, 1.0, -1.0)
    x = torch.zeros(n, 3, 16, 16)
    x[:, 0] = (y[:, 0:1, None] + 1) * 100
    x[:, 1] = (y[:, 1:2, None] + 1) * 60
    x[:, 2, 4:12, 4:12] = ((y[:, 2:3, None] + 1) * 120).expand(-1, 8, 8)
    x += torch.rand(x.shape, generator=g) * 20
    return x.clamp(0, 255).to(torch.uint8), y


class SyntheticPair(Pair):
    name = "synthetic"
    description = "synthetic squares for tests"
    x_modality = "image"
    y_modality = "named_vector"
    Config = SynthConfig
    judge_model = "attribute_judge"

    def evaluations(self) -> dict[str, Any]:
        from cmmkit_lfw.fidelity import attribute_fidelity

        return {"attribute_fidelity": attribute_fidelity}

    def presets(self) -> dict[str, dict[str, Any]]:
        small = {"latent_dim": 4, "posterior_hidden": 16, "posterior_y_hidden": 8}
        return {"default": {"train": {"epochs": 1, "batch_size": 16, "grid_examples": 8},
                            "models": {"cmma": {"model": {**small, "prior_hidden": 16}},
                                       "cvae": {"model": {**small, "decoder_y_hidden": 8}},
                                       "vae": {"model": {"latent_dim": 4, "posterior_hidden": 16}},
                                       "cgan": {"model": {"noise_dim": 4, "generator_y_hidden": 8,
                                                          "discriminator_hidden": 16, "discriminator_y_hidden": 8}},
                                       "attribute_judge": {"model": {"hidden": 16}}}}}

    def load(self, config: SynthConfig, data_dir: Path | None, *, download: bool = True,  # type: ignore[override]
             progress: bool = True) -> PairData:
        x, y = synthetic_tensors(config.n)
        a, b = int(config.n * 0.6), int(config.n * 0.8)
        splits = {"train": TensorPairDataset(x[:a], y[:a]), "val": TensorPairDataset(x[a:b], y[a:b]),
                  "test": TensorPairDataset(x[b:], y[b:])}
        info = {"x": {"channels": 3, "height": 16, "width": 16},
                "y": vector_info(["red", "green", "square", "unused"], y[:a])}
        return PairData(splits, info)


class SyntheticPlugin:
    @hookimpl
    def register_pairs(self, register: Any) -> None:
        register(SyntheticPair())
