"""The registry of modalities, pairs and models that plugins fill through their hooks.

cmmkit owns the registry: plugins only call ``register``. Each hook implementation is called on
its own so that one broken plugin is reported by name and the others still register.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from cmmkit.errors import CmmkitError, PluginError, suggest

T = TypeVar("T")


class Registrable:
    """Base of :class:`cmmkit.pair.Pair`. Defined here so that the registry can check what a plugin
    registers as a pair without importing ``cmmkit.pair``, whose default ``modalities()`` looks the
    pair's modalities up in the registry (no import cycle between the two)."""


@dataclass
class Entry(Generic[T]):
    name: str
    obj: T
    plugin: str


@dataclass
class Table(Generic[T]):
    """Name -> registered object, with the plugin that registered it."""

    kind: str
    base: type
    instance: bool  # pairs register instances, modalities/models register classes
    shown: str = ""  # the base's public name in messages (default: its module and qualified name)
    entries: dict[str, Entry[T]] = field(default_factory=dict)

    def add(self, obj: Any, plugin: str) -> None:
        ok = isinstance(obj, self.base) if self.instance else (isinstance(obj, type) and issubclass(obj, self.base))
        if not ok:
            what = "an instance of" if self.instance else "a subclass of"
            shown = self.shown or f"{self.base.__module__}.{self.base.__qualname__}"
            raise PluginError(f"plugin {plugin!r} registered {obj!r} as a {self.kind}; expected {what} {shown}")
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.kind} without a string `name`")
        if name in self.entries:
            raise PluginError(f"plugin {plugin!r} registered {self.kind} {name!r}, which plugin "
                              f"{self.entries[name].plugin!r} already registered")
        self.entries[name] = Entry(name, obj, plugin)

    def get(self, name: str) -> T:
        try:
            return self.entries[name].obj
        except KeyError:
            known = ", ".join(sorted(self.entries)) or "none installed"
            raise CmmkitError(f"unknown {self.kind} {name!r}.{suggest(name, self.entries)} "
                              f"Known {self.kind}s: {known}") from None

    def names(self) -> list[str]:
        return sorted(self.entries)


class Registry:
    """What the installed plugins provide. Use :func:`get_registry` for the shared one."""

    def __init__(self, pm: Any) -> None:
        from cmmkit.modality import Modality
        from cmmkit.models.base import ConditionalModel

        self.modalities: Table[type[Modality]] = Table("modality", Modality, instance=False)
        self.pairs: Table[Any] = Table("pair", Registrable, instance=True, shown="cmmkit.pair.Pair")
        self.models: Table[type[ConditionalModel]] = Table("model", ConditionalModel, instance=False)
        for hook, table in (("register_modalities", self.modalities), ("register_pairs", self.pairs),
                            ("register_models", self.models)):
            for impl in getattr(pm.hook, hook).get_hookimpls():
                plugin = impl.plugin_name
                added: list[str] = []

                def register(obj: Any, _table: Table = table, _plugin: str = plugin, _added: list[str] = added) -> None:
                    _table.add(obj, _plugin)
                    _added.append(obj.name)

                try:
                    impl.function(register=register)
                except Exception as exc:
                    for name in added:  # all or nothing for this plugin's hook
                        table.entries.pop(name, None)
                    warnings.warn(f"cmmkit plugin {plugin!r} failed in {hook}: {exc}", stacklevel=2)

    def pair(self, name: str) -> Any:
        return self.pairs.get(name)

    def model(self, name: str) -> Any:
        return self.models.get(name)

    def modality(self, name: str) -> Any:
        return self.modalities.get(name)


_registry: Registry | None = None


def get_registry(refresh: bool = False) -> Registry:
    """The registry built from every installed plugin (built once, then cached)."""
    global _registry
    if _registry is None or refresh:
        from cmmkit.plugins import load_plugins

        _registry = Registry(load_plugins())
    return _registry
