"""cmmkit.testing: passes on good pairs (synthetic, LFW in the official format) and fails with a
precise message on deliberately broken pairs, modalities and models."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from fakes import SyntheticPair, synthetic_tensors
from lfw_fixtures import make_lfw_fixture
from torch import nn

from cmmkit.hookspecs import hookimpl
from cmmkit.modalities import NamedVectorModality
from cmmkit.modalities.vector import GaussianVectorDecoder
from cmmkit.modality import batch_size
from cmmkit.models.base import ConditionalModel
from cmmkit.pair import PairData, TensorPairDataset
from cmmkit.plugins import pm
from cmmkit.registry import get_registry
from cmmkit.testing import ConformanceError, check_modality, check_pair, registered


def test_synthetic_pair_conforms_including_a_saved_run(synthetic_pair, tmp_path):
    report = check_pair(synthetic_pair, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "checkpoint.safetensors").is_file()
    before, after = report.losses["main"]
    assert after < before and report.split_sizes == {"train": 57, "val": 19, "test": 20}
    assert report.structure == {"x": "uint8[4d]", "y": "float32[2d]"}


def test_synthetic_pair_conforms_with_a_two_group_model(synthetic_pair):
    report = check_pair("synthetic", model="cgan")
    assert set(report.losses) == {"discriminator", "generator"}


def test_lfw_fixture_in_the_official_format_conforms(tmp_path):
    fx = make_lfw_fixture(tmp_path / "lfw", rows=40)
    report = check_pair("lfw_faces_attrs", preset="tiny", data_dir=fx["folder"],
                        config_sets=["pair.train_size=20", "pair.val_size=8"])
    assert report.split_sizes["train"] == 20 and "have no face" in report.notes[0]


def test_unregistered_pair_is_reported_with_the_fix():
    with pytest.raises(ConformanceError, match="not registered.*cmmkit.testing.registered"):
        check_pair("no_such_pair")


# --- broken fakes ----------------------------------------------------------------------------
class _PerDimDecoder(GaussianVectorDecoder):
    def log_prob(self, h: torch.Tensor, x: Any) -> torch.Tensor:
        return self(h).log_prob(x)[:, None].expand(-1, 4)  # (B, D): forgot to sum


class _NaNDecoder(GaussianVectorDecoder):
    def log_prob(self, h: torch.Tensor, x: Any) -> torch.Tensor:
        return self(h).log_prob(x) * math.nan


class _IgnoresLatent(GaussianVectorDecoder):
    def log_prob(self, h: torch.Tensor, x: Any) -> torch.Tensor:
        return self(torch.zeros_like(h)).log_prob(x)


def _vector(decoder_cls: type | None = None, **overrides: Any) -> type[NamedVectorModality]:
    """A named-vector modality called ``broken_vector`` with one method replaced."""
    methods: dict[str, Any] = {"name": "broken_vector", **overrides}
    if decoder_cls is not None:
        methods["decoder"] = lambda self, n: decoder_cls(n, self.dims, 8, -6.0)
    return type("BrokenVector", (NamedVectorModality,), methods)


def _raw_y(n: int = 6) -> torch.Tensor:
    return synthetic_tensors(n)[1]


def _info(y: torch.Tensor) -> dict[str, Any]:
    from cmmkit.modalities.vector import vector_info

    return vector_info(["a", "b", "c", "d"], y)


@pytest.mark.parametrize("modality, message", [
    (_vector(_PerDimDecoder), r"log_prob: returned shape \(6, 4\); expected \(6,\)"),
    (_vector(_NaNDecoder), r"log_prob: value has 6 non-finite value\(s\)"),
    (_vector(_IgnoresLatent), "does not depend on the decoder's input h"),
    (_vector(encoder=lambda self, n: nn.Linear(self.dims, n + 1)), r"encoder\(8\): returned \(6, 9\); expected"),
    (_vector(prepare=lambda self, v, dequantize=True: v[:-1].float()), r"prepare\(dequantize=True\): holds 5"),
    (_vector(to_user=lambda self, v: [{}] * (len(v) - 1)), r"to_user: returned 5 item\(s\) for 6"),
    (_vector(from_user=lambda self, items, **kw: torch.zeros(len(items), 4)),
     r"should reproduce the prepared batch v: value differs by up to"),
])
def test_broken_modalities_fail_with_a_precise_message(modality, message):
    y = _raw_y()
    instance = modality(modality.Options(hidden=8), _info(y))
    with pytest.raises(ConformanceError, match=message) as caught:
        check_modality(instance, y, side="y", roundtrip=True)
    assert isinstance(caught.value, AssertionError) and "y modality 'broken_vector'" in str(caught.value)


def test_good_modality_passes_directly():
    y = _raw_y()
    assert check_modality(NamedVectorModality(NamedVectorModality.Options(hidden=8), _info(y)), y, roundtrip=True) == []


class _Uneven(TensorPairDataset):
    """y one example short in every batch: x/y lengths disagree."""

    def get_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": self.x[indices], "y": self.y[indices[:-1]]}


def _load_with(change):
    def load(self, config, data_dir, *, download=True, progress=True):
        data = SyntheticPair.load(self, config, data_dir, download=download, progress=progress)
        change(data)
        return data
    return load


def _uneven(data: PairData) -> None:
    data.splits["val"] = _Uneven(data.splits["val"].x, data.splits["val"].y)


def _tensor_info(data: PairData) -> None:
    data.info["y"]["mean"] = torch.zeros(4)


def _no_test(data: PairData) -> None:
    del data.splits["test"]


def _other_dtype(data: PairData) -> None:
    data.splits["test"] = TensorPairDataset(data.splits["test"].x.float(), data.splits["test"].y)


class _Stuck(ConditionalModel):
    """A model whose loss does not reach its parameters: training can never lower it."""

    name = "stuck"

    def __init__(self, config: Any, x: Any, y: Any) -> None:
        super().__init__(config, x, y)
        self.w = nn.Parameter(torch.zeros(1))

    def training_loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return torch.ones((), requires_grad=True) * 1.0, {}

    def evaluate(self, batch: Any) -> dict[str, torch.Tensor]:
        return {"bound": torch.zeros(batch_size(batch["y"]))}

    def generate(self, y: Any, noise_scale: float = 0.0) -> Any:
        return torch.full((batch_size(y), 3, 16, 16), 0.5)


class _BrokenPlugin:
    def __init__(self, pair: SyntheticPair, model: type | None = None) -> None:
        self.pair, self.model = pair, model

    @hookimpl
    def register_pairs(self, register: Any) -> None:
        register(self.pair)

    @hookimpl
    def register_models(self, register: Any) -> None:
        if self.model is not None:
            register(self.model)


def _pair(**methods: Any) -> SyntheticPair:
    return type("BrokenSynthetic", (SyntheticPair,), methods)()


@pytest.mark.parametrize("pair, model, message", [
    (_pair(load=_load_with(_uneven)), None, r"split 'val'.get_batch\(8 indices\)\['y'\]: holds 7 example\(s\), expected 8"),
    (_pair(load=_load_with(_tensor_info)), None, "info: is not strict JSON .*Tensor is not JSON serializable"),
    (_pair(load=_load_with(_no_test)), None, r"load\(\): splits \['train', 'val'\]; missing \['test'\]"),
    (_pair(load=_load_with(_other_dtype)), None, "split 'test': x has structure float32.*first split had uint8"),
    (_pair(), _Stuck, "no parameter of optimizer group 'main' received a gradient"),
])
def test_broken_pairs_and_models_fail_with_a_precise_message(pair, model, message):
    with registered(_BrokenPlugin(pair, model), name="broken-test-plugin"):
        with pytest.raises(ConformanceError, match=message) as caught:
            check_pair("synthetic", model=model.name if model else "cmma")
    assert "pair 'synthetic'" in str(caught.value)
    assert not pm.has_plugin("broken-test-plugin") and "synthetic" not in get_registry().pairs.names()


def test_stuck_model_message_says_what_was_compared():
    class _Flat(_Stuck):
        name = "flat"

        def training_loss(self, batch):
            return self.w.sum() * 0 + 2.0, {}  # a gradient, but zero

    with registered(_BrokenPlugin(_pair(), _Flat), name="broken-test-plugin"):
        with pytest.raises(ConformanceError, match=r"5 Adagrad step\(s\) on one fixed batch .* did not lower the "
                                                   r"loss: 2 before, 2 after"):
            check_pair("synthetic", model="flat")
