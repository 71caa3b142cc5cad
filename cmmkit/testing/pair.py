"""``check_pair``: a pair end to end (steps 1-6 of the package docstring)."""

from __future__ import annotations

import json
import random
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import torch

from cmmkit.config import DEFAULT_MODEL
from cmmkit.modality import Modality, Value, batch_size
from cmmkit.testing._common import (
    ConformanceError,
    PairReport,
    _check_batch,
    _check_finite,
    _compare,
    _fail,
    structure,
)
from cmmkit.testing.modality import check_modality
from cmmkit.training.step import StepOptimizer


def _config(name: str, preset: str | None, config_sets: Sequence[str], model: str, data_dir: Path | str | None,
            download: bool) -> Any:
    from cmmkit.config import build_config, deep_merge, dump, validate

    config = build_config(name, preset=preset, sets=list(config_sets), model=model)
    data = {"download": download} | ({"data_dir": str(data_dir)} if data_dir is not None else {})
    return validate(deep_merge(dump(config), {"data": data}))


def _load(pair: Any, config: Any, where: str) -> Any:
    from cmmkit.pair import PairData, PairDataset

    data = pair.load(config.pair, config.data.data_dir, download=config.data.download, progress=False)
    if not isinstance(data, PairData):
        raise _fail(f"{where}.load()", f"returned {type(data).__name__}; expected cmmkit.pair.PairData")
    missing = {"train", "val", "test"} - set(data.splits)
    if missing:
        raise _fail(f"{where}.load()", f"splits {sorted(data.splits)}; missing {sorted(missing)}")
    for split, ds in data.splits.items():
        if not isinstance(ds, PairDataset):
            raise _fail(f"{where} split {split!r}", f"is a {type(ds).__name__}; expected a cmmkit.pair.PairDataset")
        if len(ds) < 1:
            raise _fail(f"{where} split {split!r}", "is empty")
    return data


def _info(info: Any, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(info, dict) or not all(isinstance(info.get(k), dict) for k in ("x", "y")):
        raise _fail(f"{where} info", f"expected {{'x': {{...}}, 'y': {{...}}}}, got {type(info).__name__} "
                    f"with keys {sorted(info) if isinstance(info, dict) else '-'}")
    try:
        text = json.dumps(info, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _fail(f"{where} info", f"is not strict JSON ({exc}); it is saved in every checkpoint, so use "
                    "lists, numbers and strings (e.g. tensor.tolist()) and no NaN") from None
    return json.loads(text)


def _splits(data: Any, n: int, where: str) -> tuple[dict[str, Value], dict[str, Any]]:
    """The first ``n`` examples of the train split as a batch, plus each side's structure; checks
    items and batches of every split."""
    shapes: dict[str, Any] = {}
    first: dict[str, Value] = {}
    for split, ds in data.splits.items():
        item = ds[0]
        if not isinstance(item, dict) or set(item) != {"x", "y"}:
            raise _fail(f"{where} split {split!r}[0]", f"expected a dict with keys 'x' and 'y', got "
                        f"{sorted(item) if isinstance(item, dict) else type(item).__name__}")
        k = min(n, len(ds))
        batch = ds.get_batch(torch.arange(k))
        if not isinstance(batch, dict) or set(batch) != {"x", "y"}:
            raise _fail(f"{where} split {split!r}.get_batch", "expected a dict with keys 'x' and 'y'")
        for side in ("x", "y"):
            _check_batch(f"{where} split {split!r}.get_batch({k} indices)[{side!r}]", batch[side], k)
            sig = structure(batch[side])
            if shapes.setdefault(side, sig) != sig:
                raise _fail(f"{where} split {split!r}", f"{side} has structure {sig} but the first split had "
                            f"{shapes[side]}")
        if split == "train":
            first = batch
    return first, shapes


class _Checked(StepOptimizer):
    """A step optimizer that is live (checks the gradients, then steps) or frozen (does nothing), so
    the kit can train one group at a time through the model's own ``train_step``."""

    live, stepped, at, group = False, False, "", ""

    def zero_grad(self) -> None:
        if self.live:
            super().zero_grad()

    def step(self) -> None:
        if not self.live:
            return
        self.stepped = True
        if not any(p.grad is not None for p in self.params):
            raise _fail(self.at, f"no parameter of optimizer group {self.group!r} received a gradient")
        for p in self.params:
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                raise _fail(self.at, f"non-finite gradient for a parameter of shape {tuple(p.shape)}")
        super().step()


def _seeded_step(model: Any, raw: dict[str, Value], optimizers: Any, seed: int, key: str, at: str) -> torch.Tensor:
    """``train_step`` on the raw batch prepared under a fixed seed: dequantization and
    reparameterisation noise are the same on every call, so a lower loss means better parameters,
    not luckier noise. Returns the log ``key`` (the group's loss, computed before its update)."""
    torch.manual_seed(seed)
    random.seed(seed)
    try:
        logs = model.train_step(model.prepare(raw), optimizers)
    except ConformanceError:
        raise
    except RuntimeError as exc:
        raise _fail(at, f"raised {exc!r} (does the loss depend on a trainable parameter?)") from exc
    if not isinstance(logs, dict) or key not in logs:
        raise _fail(at, f"returned logs {sorted(logs) if isinstance(logs, dict) else type(logs).__name__}; expected "
                    f"a dict holding {key!r} (a model with several optimizer groups logs loss_<group> for each)")
    for name, value in logs.items():
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            raise _fail(at, f"log {name!r} is {type(value).__name__} of shape {getattr(value, 'shape', '-')}; "
                        "expected a scalar tensor")
        _check_finite(f"{at} log {name!r}", value)
    return logs[key].detach()


def _check_training(model: Any, config: Any, raw: dict[str, Value], steps: int, seed: int,
                    where: str) -> dict[str, tuple[float, float]]:
    """Each optimizer group in turn is the only live one: ``steps`` of the model's own
    ``train_step`` on one fixed batch must lower that group's loss log."""
    from cmmkit.training.distributed import Dist
    from cmmkit.training.optim import make_optimizers
    from cmmkit.training.step import StepOptimizers

    optimizers = StepOptimizers(make_optimizers(model, config.train), Dist(), kind=_Checked)
    checked: dict[str, _Checked] = dict(optimizers.items())  # type: ignore[arg-type]
    model.train()
    losses = {}
    for group, opt in checked.items():
        key = "loss" if len(checked) == 1 else f"loss_{group}"
        at = f"{where}.train_step (optimizer group {group!r}, log {key!r})"
        opt.at, opt.group = at, group
        opt.live = True
        before = _seeded_step(model, raw, optimizers, seed, key, at)
        if not opt.stepped:
            raise _fail(at, f"never stepped optimizer group {group!r} (call optimizers[{group!r}].step())")
        for _ in range(steps - 1):
            _seeded_step(model, raw, optimizers, seed, key, at)
        opt.live = False
        after = _seeded_step(model, raw, optimizers, seed, key, at)  # every group frozen: a measurement
        b, a = float(before), float(after)
        if not a < b:
            raise _fail(at, f"{steps} {config.train.optimizer.name} step(s) on one fixed batch (fixed seed) did "
                        f"not lower the loss: {b:.6g} before, {a:.6g} after. Does the loss depend on the "
                        "parameters through the decoders' log_prob? (or raise the learning rate/steps)")
        losses[group] = (b, a)
    return losses


def check_pair(pair: Any, *, config_sets: Sequence[str] = (), preset: str | None = None,
               data_dir: Path | str | None = None, download: bool = False, model: str = DEFAULT_MODEL,
               batch: int = 8, steps: int = 5, features: int = 8, roundtrip: Collection[str] = ("y",),
               atol: float = 1e-4, run_dir: Path | str | None = None, seed: int = 0) -> PairReport:
    """Check that the registered pair ``pair`` (its name or instance) works with the engine; see
    the module docstring for what is checked. ``config_sets`` are ``--set`` overrides (e.g. small
    networks or splits), ``preset`` the pair's preset (``default`` when None), ``data_dir`` the
    data folder (e.g. a fixture in the official format); ``download`` stays False so that a test
    never fetches data. ``model`` is the registered model checked with the pair (cmmkit's default
    model unless named, e.g. ``model="cvae"`` or a plugin's). ``batch`` examples are checked and ``steps`` optimizer steps taken;
    ``roundtrip`` lists the sides whose user form must reproduce prepared values exactly (the
    generated side of e.g. speech through Griffin-Lim cannot). With ``run_dir``, also train one
    epoch there and load it back. Raises :class:`ConformanceError`; returns a :class:`PairReport`."""
    state = random.getstate()
    with torch.random.fork_rng(devices=[]):  # the caller's random streams stay as they were
        try:
            return _check_pair(pair, config_sets, preset, data_dir, download, model, batch, steps, features,
                               roundtrip, atol, run_dir, seed)
        finally:
            random.setstate(state)


def _check_pair(pair: Any, config_sets: Sequence[str], preset: str | None, data_dir: Path | str | None,
                download: bool, model: str, batch: int, steps: int, features: int, roundtrip: Collection[str],
                atol: float, run_dir: Path | str | None, seed: int) -> PairReport:
    from cmmkit.registry import get_registry
    from cmmkit.runs import build_model

    name = pair if isinstance(pair, str) else getattr(pair, "name", None)
    reg = get_registry()
    if name not in reg.pairs.names():
        raise ConformanceError(f"pair {name!r} is not registered (known: {', '.join(reg.pairs.names())}); install "
                               "its package or wrap the check in `with cmmkit.testing.registered(plugin):`")
    instance = reg.pair(name)
    if not isinstance(pair, str) and type(instance) is not type(pair):
        raise ConformanceError(f"pair {name!r} is registered as {type(instance).__qualname__}, not "
                               f"{type(pair).__qualname__}")
    where = f"pair {name!r}"
    config = _config(name, preset, config_sets, model, data_dir, download)
    report = PairReport(name, config.model.name)
    torch.manual_seed(seed)
    data = _load(instance, config, where)
    report.split_sizes = {k: len(v) for k, v in data.splits.items()}
    report.notes += list(data.notes)
    info = _info(data.info, where)
    x, y = instance.modalities(config.pair, info)
    for side, mod, declared in (("x", x, instance.x_modality), ("y", y, instance.y_modality)):
        if not isinstance(mod, Modality) or mod.name != declared:
            raise _fail(f"{where}.modalities()", f"{side} is {mod!r}; expected the {declared!r} modality")
    raw, report.structure = _splits(data, batch, where)
    n = batch_size(raw["x"])
    for side, mod in (("x", x), ("y", y)):
        report.notes += check_modality(mod, raw[side], side=side, features=features, roundtrip=side in roundtrip,
                                       atol=atol, seed=seed)

    torch.manual_seed(seed)
    _, net = build_model(config, info)
    where_model = f"{where} with model {config.model.name!r}"
    net.eval()
    with torch.no_grad():
        metrics = net.evaluate(net.prepare(raw))
    for key, value in metrics.items():
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != (n,):
            raise _fail(f"{where_model}.evaluate", f"metric {key!r} has shape {getattr(value, 'shape', '-')}; expected ({n},)")
        _check_finite(f"{where_model}.evaluate metric {key!r}", value)
    report.losses = _check_training(net, config, raw, steps, seed, where_model)
    if net.can_generate:
        _check_generate(net, raw["y"], n, where_model)
    if run_dir is not None:
        _check_run(name, config, run_dir, raw["y"], atol)
    return report


def _conditions(net: Any, raw_y: Value) -> list[Any]:
    return list(net.y.to_user(net.y.prepare(raw_y, dequantize=False)))


def _check_generate(net: Any, raw_y: Value, n: int, where: str) -> None:
    """As :meth:`cmmkit.runs.TrainedRun.generate`: user conditions in, one user item out each."""
    net.eval()
    with torch.no_grad():
        y = net.y.prepare(net.y.from_user(_conditions(net, raw_y)), dequantize=False)
        generated = net.generate(y, noise_scale=0.0)
        _check_batch(f"{where}.generate", generated, n)
        _check_finite(f"{where}.generate", generated)
        items = net.x.to_user(generated)
        if len(items) != n:
            raise _fail(f"{where}: x.to_user(generate(...))", f"returned {len(items)} item(s) for {n} conditions")
        sampled = net.generate(y, noise_scale=1.0)
        _check_batch(f"{where}.generate(noise_scale=1)", sampled, n)


def _check_run(name: str, config: Any, run_dir: Path | str, raw_y: Value, atol: float) -> None:
    """One epoch of ``cmmkit.train`` (``config`` for one epoch on the CPU) into ``run_dir``; the
    loaded run must generate as trained."""
    from cmmkit.config import deep_merge, dump, validate
    from cmmkit.runs import load_run, train

    where = f"pair {name!r}: run {run_dir}"
    run_config = validate(deep_merge(dump(config), {"train": {"epochs": 1, "tensorboard": "off", "device": "cpu"}}))
    trained = train(run_config, run_dir, progress=False)
    loaded = load_run(run_dir)
    if json.dumps(loaded.model.x.info, sort_keys=True) != json.dumps(trained.model.x.info, sort_keys=True):
        raise _fail(where, "the loaded run's x info differs from the trained one's")
    if not trained.model.can_generate:
        return
    conditions = _conditions(trained.model, raw_y)
    k = min(4, len(conditions))
    items = loaded.generate(conditions[:k])
    if len(items) != k:
        raise _fail(f"{where}: load_run(...).generate", f"returned {len(items)} item(s) for {k} conditions")
    with torch.no_grad():
        y = trained.model.y.prepare(trained.model.y.from_user(conditions[:k]), dequantize=False)
        expected = trained.model.generate(y, noise_scale=0.0)
        got = loaded.model.generate(y, noise_scale=0.0)
    _compare(f"{where}: the loaded run generates other x than the trained model", expected, got, atol)
