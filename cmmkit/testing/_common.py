"""What the conformance checks share: the error, the report, value helpers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from cmmkit.modality import Value, batch_size


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
