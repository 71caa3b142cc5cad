"""The hooks a cmmkit plugin can implement.

A plugin is any module exposed through the ``cmmkit`` entry-point group (see ``plugins.py``).
Each hook receives a ``register`` callback; cmmkit owns the registry, so a duplicate name or an
object of the wrong type is reported with the plugin's name instead of failing later.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("cmmkit")
hookimpl = pluggy.HookimplMarker("cmmkit")

Register = Callable[..., None]


@hookspec
def register_modalities(register: Register) -> None:
    """Called once when the registry is first built. Call ``register(ModalityClass)`` for each
    :class:`cmmkit.modality.Modality` subclass the plugin provides (its ``name`` is the key).
    Returns nothing."""


@hookspec
def register_pairs(register: Register) -> None:
    """Called once when the registry is first built, after ``register_modalities``.
    Call ``register(pair)`` with an instance of a :class:`cmmkit.pair.Pair` subclass for each
    dataset pair (conditioning modality y -> generated modality x). Returns nothing."""


@hookspec
def register_models(register: Register) -> None:
    """Called once when the registry is first built. Call ``register(ModelClass)`` for each
    :class:`cmmkit.models.base.ConditionalModel` subclass (its ``name`` is the key).
    Returns nothing."""




@hookspec
def register_commands(cli: Any) -> None:
    """Called once when the ``cmmkit`` command line is built, with a
    :class:`cmmkit.cli_plugins.CommandLine` (``cmmkit.api.CommandLine``): add commands
    (``cli.command``), condition flags of ``cmmkit generate`` (``cli.condition``,
    ``cli.generate_option``) or options of a core command (``cli.option``). Returns nothing."""
