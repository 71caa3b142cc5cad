"""Conformance checks for pair and modality plugins, to run in a plugin's own pytest suite.

Why: the engine (bound, models, trainer, ``cmmkit generate``) only calls the public methods of
:class:`~cmmkit.pair.Pair` and :class:`~cmmkit.modality.Modality`; a pair that gets one of them
subtly wrong (a decoder returning (B, D) instead of (B,), ``info`` holding a tensor, ``y`` one
example short) fails far from the cause, epochs into a run. These checks exercise every method the
engine relies on, on a few examples, in seconds, and fail with one precise message.

    from cmmkit.testing import check_pair, registered
    import my_package.plugin

    def test_my_pair_conforms(tmp_path):
        with registered(my_package.plugin, name="my-plugin"):      # skip if installed
            check_pair("my_pair", preset="tiny", data_dir=fixture_dir, run_dir=tmp_path / "run")

:func:`check_pair` verifies, in order (each failure raises :class:`ConformanceError`, an
``AssertionError`` naming the pair, the step and what was expected):

1. the config builds (preset, ``config_sets``) and ``load()`` returns a :class:`PairData` with
   non-empty ``train``, ``val`` and ``test`` :class:`PairDataset` splits;
2. ``info`` has ``x``/``y`` dicts and is strict JSON (no NaN), and the modalities build from its
   JSON round trip (as :func:`cmmkit.load_run` builds them from a checkpoint);
3. every split yields ``{"x", "y"}`` items and batches whose x and y hold as many examples as asked,
   with the same structure (dict keys, dtypes, number of dimensions) in every split;
4. each modality (:func:`check_modality`): ``prepare`` works with and without dequantization and is
   finite; the encoder returns finite (B, F) features; the decoder's ``log_prob`` is a finite (B,)
   tensor with a gradient to the decoder's input and parameters; ``decoder.generate`` gives B
   examples that ``to_user`` turns into B items and ``from_user`` accepts back; for the sides in
   ``roundtrip`` (default ``y``: the conditions users type) ``prepare(from_user(to_user(v)))``
   reproduces ``v``;
5. the model: ``evaluate`` gives finite (B,) metrics; for each optimizer group, a few optimizer
   steps on one fixed batch (fixed seeds, so the noise is the same before and after) lower that
   group's ``training_loss``; ``generate`` from user conditions returns one item per condition;
6. optionally (``run_dir``), one epoch of ``cmmkit.train`` into ``run_dir``, then
   :func:`cmmkit.load_run` generates exactly what the trained model generates.

Only public interfaces are used, so the same call works for images, speech and text pairs.
"""

from __future__ import annotations

import json
import math
import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterator, Sequence

import torch

from cmmkit.modality import Modality, Value, batch_size

__all__ = ["ConformanceError", "PairReport", "check_modality", "check_pair", "registered"]


class ConformanceError(AssertionError):
    """A pair or modality does not do what the engine relies on. An ``AssertionError``, so
    pytest shows the message as a plain test failure."""


@dataclass
class PairReport:
    """What :func:`check_pair` saw, for a test to print or assert on further."""

    pair: str
    model: str
    split_sizes: dict[str, int] = field(default_factory=dict)
    structure: dict[str, Any] = field(default_factory=dict)  # {"x": ..., "y": ...} dtypes and dims
    losses: dict[str, tuple[float, float]] = field(default_factory=dict)  # group -> (before, after)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        losses = ", ".join(f"{g} {a:.4g} -> {b:.4g}" for g, (a, b) in self.losses.items())
        return (f"{self.pair} with {self.model}: splits {self.split_sizes}, x {self.structure.get('x')}, "
                f"y {self.structure.get('y')}, loss {losses}" + "".join(f"\n  note: {n}" for n in self.notes))


def _fail(where: str, message: str) -> ConformanceError:
    return ConformanceError(f"{where}: {message}")


@contextmanager
def registered(plugin: Any, name: str | None = None) -> Iterator[None]:
    """Register ``plugin`` (a module or object with ``@hookimpl`` functions) with cmmkit's plugin
    manager for the duration of the block, as if it were installed, then remove it again. Use it
    in tests of a plugin that is not pip-installed. Does nothing if ``name`` is already registered
    (e.g. the package is installed and found through its entry point)."""
    from cmmkit.plugins import load_plugins, pm
    from cmmkit.registry import get_registry

    load_plugins()
    name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    if pm.has_plugin(name) or pm.is_registered(plugin):
        yield
        return
    pm.register(plugin, name=name)
    get_registry(refresh=True)
    try:
        yield
    finally:
        pm.unregister(name=name)
        get_registry(refresh=True)


# --- values ---------------------------------------------------------------------------------
def structure(value: Value) -> Any:
    """The shape-independent structure of a value: dtype and number of dimensions per tensor."""
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')}[{value.dim()}d]"
    if isinstance(value, dict):
        return {k: structure(v) for k, v in sorted(value.items())}
    return type(value).__name__


def _tensors(value: Value, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        yield prefix or "value", value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{prefix}[{k!r}]")


def _check_finite(where: str, value: Value) -> None:
    for key, t in _tensors(value):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise _fail(where, f"{key} has {bad} non-finite value(s) (NaN or inf) out of {t.numel()}")


def _check_batch(where: str, value: Value, n: int) -> None:
    try:
        got = batch_size(value)
    except Exception as exc:
        raise _fail(where, f"cannot count examples in a {type(value).__name__}: {exc!r}") from None
    if got != n:
        raise _fail(where, f"holds {got} example(s), expected {n}")
    for key, t in _tensors(value):
        if t.dim() == 0 or t.shape[0] != n:
            raise _fail(where, f"{key} has shape {tuple(t.shape)}; every tensor needs the batch ({n}) first")


def _compare(where: str, expected: Value, got: Value, atol: float) -> None:
    if structure(expected) != structure(got):
        raise _fail(where, f"structure {structure(got)} differs from {structure(expected)}")
    for (key, a), (_, b) in zip(_tensors(expected), _tensors(got)):
        if a.shape != b.shape:
            raise _fail(where, f"{key} has shape {tuple(b.shape)}, expected {tuple(a.shape)}")
        if a.is_floating_point():
            diff = float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
            if not diff <= atol:
                raise _fail(where, f"{key} differs by up to {diff:.3g} (tolerance {atol:g})")
        elif not torch.equal(a, b):
            raise _fail(where, f"{key} differs in {int((a != b).sum())} of {a.numel()} entries")


# --- modalities -----------------------------------------------------------------------------
def check_modality(modality: Modality, raw: Value, *, side: str = "x", features: int = 8,
                   roundtrip: bool = False, atol: float = 1e-4, seed: int = 0) -> list[str]:
    """Check one modality on a raw batch ``raw`` (as a dataset's ``get_batch`` returns it); see
    the module docstring, step 4. ``roundtrip``: ``prepare(from_user(to_user(v)))`` must equal
    ``v`` for the undequantized prepared batch (within ``atol``). Returns notes (checks skipped
    because a method raises ``NotImplementedError``)."""
    where = f"{side} modality {getattr(modality, 'name', type(modality).__name__)!r}"
    notes: list[str] = []
    torch.manual_seed(seed)
    n = batch_size(raw)
    if n < 1:
        raise _fail(where, "the batch to check is empty")
    dims = modality.dims
    if not isinstance(dims, int) or isinstance(dims, bool) or dims < 1:
        raise _fail(where, f"dims is {dims!r}; expected a positive int (scalars per example, for bits/dim)")
    offset = modality.discrete_log_offset()
    if not (isinstance(offset, (int, float)) and math.isfinite(offset) and offset <= 0):
        raise _fail(where, f"discrete_log_offset() is {offset!r}; expected a finite float <= 0")
    prepared = {}
    for deq in (True, False):
        try:
            value = modality.prepare(raw, dequantize=deq)
        except Exception as exc:
            raise _fail(f"{where}.prepare(dequantize={deq})", f"raised {exc!r}") from exc
        _check_batch(f"{where}.prepare(dequantize={deq})", value, n)
        _check_finite(f"{where}.prepare(dequantize={deq})", value)
        prepared[deq] = value
    value = prepared[True]

    encoder = modality.encoder(features)
    try:
        feats = encoder(value)
    except Exception as exc:
        raise _fail(f"{where}.encoder({features})", f"raised {exc!r} on a prepared batch") from exc
    if not isinstance(feats, torch.Tensor) or tuple(feats.shape) != (n, features):
        got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
        raise _fail(f"{where}.encoder({features})", f"returned {got}; expected a tensor of shape ({n}, {features})")
    _check_finite(f"{where}.encoder({features}) features", feats)

    decoder = modality.decoder(features)
    h = torch.randn(n, features, requires_grad=True)
    try:
        log_p = decoder.log_prob(h, value)
    except Exception as exc:
        raise _fail(f"{where}.decoder({features}).log_prob", f"raised {exc!r}") from exc
    if not isinstance(log_p, torch.Tensor) or tuple(log_p.shape) != (n,):
        got = tuple(log_p.shape) if isinstance(log_p, torch.Tensor) else type(log_p).__name__
        raise _fail(f"{where}.decoder({features}).log_prob", f"returned shape {got}; expected ({n},): one "
                    "log-likelihood per example, summed over the example's dimensions")
    _check_finite(f"{where}.decoder({features}).log_prob", log_p)
    log_p.sum().backward()
    if h.grad is None or not bool(h.grad.abs().sum() > 0):
        raise _fail(f"{where}.decoder({features}).log_prob", "does not depend on the decoder's input h "
                    "(zero gradient): the latent code could never influence this modality")
    if not any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in decoder.parameters()):
        raise _fail(f"{where}.decoder({features}).log_prob", "no decoder parameter gets a gradient")

    with torch.no_grad():
        generated = decoder.generate(h.detach(), noise_scale=0.0)
    _check_batch(f"{where}.decoder({features}).generate", generated, n)
    try:
        items = modality.to_user(generated)
    except NotImplementedError:
        notes.append(f"{where}: to_user not implemented; user round trips not checked")
        return notes
    if len(items) != n:
        raise _fail(f"{where}.to_user", f"returned {len(items)} item(s) for {n} generated examples")
    back = modality.from_user(list(items))
    _check_batch(f"{where}.from_user(to_user(generated))", back, n)
    _check_batch(f"{where}.prepare(from_user(to_user(generated)))", modality.prepare(back, dequantize=False), n)
    if roundtrip:
        user = modality.to_user(prepared[False])
        again = modality.prepare(modality.from_user(list(user)), dequantize=False)
        _compare(f"{where}: prepare(from_user(to_user(v))) should reproduce the prepared batch v", prepared[False],
                 again, atol)
    return notes


# --- pairs ----------------------------------------------------------------------------------
def _config(name: str, preset: str | None, config_sets: Sequence[str], model: str, data_dir: Path | str | None,
            download: bool, extra: dict[str, Any] | None = None) -> Any:
    from cmmkit.config import build_config, deep_merge, dump, validate

    config = build_config(name, preset=preset, sets=list(config_sets), model=model)
    data = {"download": download} | ({"data_dir": str(data_dir)} if data_dir is not None else {})
    return validate(deep_merge(dump(config), {"data": data, **(extra or {})}))


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


def _seeded_loss(model: Any, batch: dict[str, Value], group: str, seed: int, grad: bool = True) -> torch.Tensor:
    """The loss under a fixed seed: dequantization and reparameterisation noise are the same
    on every call, so a lower value means better parameters, not luckier noise."""
    torch.manual_seed(seed)
    random.seed(seed)
    with torch.set_grad_enabled(grad):
        loss, _ = model.training_loss(batch, group)
    return loss


def _check_training(model: Any, config: Any, batch: dict[str, Value], steps: int, seed: int,
                    where: str) -> dict[str, tuple[float, float]]:
    from cmmkit.train.trainer import make_optimizers

    optimizers = make_optimizers(model, config.train)
    model.train()
    losses = {}
    for group, opt in optimizers.items():
        at = f"{where}.training_loss(batch, {group!r})"
        before = _seeded_loss(model, batch, group, seed, grad=False)
        if not isinstance(before, torch.Tensor) or before.dim() != 0:
            raise _fail(at, f"returned {type(before).__name__} of shape {getattr(before, 'shape', '-')}; expected a scalar")
        _check_finite(at, before)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = _seeded_loss(model, batch, group, seed)
            if not loss.requires_grad:
                raise _fail(at, "the loss does not depend on any trainable parameter (no gradient)")
            loss.backward()
            params = [p for g in opt.param_groups for p in g["params"]]
            if not any(p.grad is not None for p in params):
                raise _fail(at, f"no parameter of optimizer group {group!r} received a gradient")
            for p in params:
                if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                    raise _fail(at, f"non-finite gradient for a parameter of shape {tuple(p.shape)}")
            opt.step()
        after = _seeded_loss(model, batch, group, seed, grad=False)
        _check_finite(at, after)
        b, a = float(before), float(after)
        if not a < b:
            raise _fail(at, f"{steps} {config.train.optimizer.name} step(s) on one fixed batch (fixed seed) did "
                        f"not lower the loss: {b:.6g} before, {a:.6g} after. Does the loss depend on the "
                        "parameters through the decoders' log_prob? (or raise the learning rate/steps)")
        losses[group] = (b, a)
    return losses


def check_pair(pair: Any, *, config_sets: Sequence[str] = (), preset: str | None = None,
               data_dir: Path | str | None = None, download: bool = False, model: str = "cmma",
               batch: int = 8, steps: int = 5, features: int = 8, roundtrip: Collection[str] = ("y",),
               atol: float = 1e-4, run_dir: Path | str | None = None, seed: int = 0) -> PairReport:
    """Check that the registered pair ``pair`` (its name or instance) works with the engine; see
    the module docstring for what is checked. ``config_sets`` are ``--set`` overrides (e.g. small
    networks or splits), ``preset`` the pair's preset (``default`` when None), ``data_dir`` the
    data folder (e.g. a fixture in the official format); ``download`` stays False so that a test
    never fetches data. ``batch`` examples are checked and ``steps`` optimizer steps taken;
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
    from cmmkit.modality import Modality
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
        metrics = net.evaluate(raw)
    for key, value in metrics.items():
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != (n,):
            raise _fail(f"{where_model}.evaluate", f"metric {key!r} has shape {getattr(value, 'shape', '-')}; expected ({n},)")
        _check_finite(f"{where_model}.evaluate metric {key!r}", value)
    report.losses = _check_training(net, config, raw, steps, seed, where_model)
    if net.can_generate:
        _check_generate(net, raw["y"], n, where_model)
    if run_dir is not None:
        _check_run(name, preset, config_sets, config, data_dir, download, run_dir, raw["y"], atol)
    return report


def _conditions(net: Any, raw_y: Value) -> list[Any]:
    return list(net.y.to_user(net.y.prepare(raw_y, dequantize=False)))


def _check_generate(net: Any, raw_y: Value, n: int, where: str) -> None:
    """As :meth:`cmmkit.runs.TrainedRun.generate`: user conditions in, one user item out each."""
    net.eval()
    with torch.no_grad():
        y = net.y.from_user(_conditions(net, raw_y))
        generated = net.generate(y, noise_scale=0.0)
        _check_batch(f"{where}.generate", generated, n)
        _check_finite(f"{where}.generate", generated)
        items = net.x.to_user(generated)
        if len(items) != n:
            raise _fail(f"{where}: x.to_user(generate(...))", f"returned {len(items)} item(s) for {n} conditions")
        sampled = net.generate(y, noise_scale=1.0)
        _check_batch(f"{where}.generate(noise_scale=1)", sampled, n)


def _check_run(name: str, preset: str | None, config_sets: Sequence[str], config: Any, data_dir: Any,
               download: bool, run_dir: Path | str, raw_y: Value, atol: float) -> None:
    """One epoch of ``cmmkit.train`` into ``run_dir``; the loaded run must generate as trained."""
    from cmmkit.runs import load_run, train

    where = f"pair {name!r}: run {run_dir}"
    extra = {"train": {"epochs": 1, "tensorboard": "off", "device": "cpu"}}
    run_config = _config(name, preset, config_sets, config.model.name, data_dir, download, extra)
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
        y = trained.model.y.from_user(conditions[:k])
        expected = trained.model.generate(y, noise_scale=0.0)
        got = loaded.model.generate(y, noise_scale=0.0)
    _compare(f"{where}: the loaded run generates other x than the trained model", expected, got, atol)
