"""Plugin discovery: every pair, modality and model, built-in or not, comes through the
``cmmkit`` entry-point group. A plugin that fails to import or register is reported with a
warning naming it; everything else keeps working."""

from __future__ import annotations

import importlib.metadata
import warnings

import entrypoints
import pluggy

from cmmkit import hookspecs

ENTRY_POINT_GROUP = "cmmkit"

pm = pluggy.PluginManager("cmmkit")
pm.add_hookspecs(hookspecs)
_loaded = False


def load_plugins() -> pluggy.PluginManager:
    """Import every module in the entry-point group once and register it with ``pm``."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    for ep in entrypoints.get_group_all(ENTRY_POINT_GROUP):
        if pm.has_plugin(ep.name):
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # a broken plugin must not take the others down
            dist = f" (from {ep.distro.name} {ep.distro.version})" if ep.distro else ""
            warnings.warn(f"cmmkit plugin {ep.name!r}{dist} failed to load: {exc!r}", stacklevel=2)
    return pm


def plugin_version(name: str) -> tuple[str, str]:
    """(distribution, version) of the plugin registered as ``name``; ("-", ...) when it was
    registered directly with ``pm.register`` rather than installed."""
    plugin = pm.get_plugin(name)
    fallback = str(getattr(plugin, "__version__", "?"))
    for ep in entrypoints.get_group_all(ENTRY_POINT_GROUP):
        if ep.name == name and ep.distro is not None:
            version = ep.distro.version
            if not version:
                try:
                    version = importlib.metadata.version(ep.distro.name)
                except importlib.metadata.PackageNotFoundError:
                    version = fallback
            return ep.distro.name, str(version)
    return "-", fallback
