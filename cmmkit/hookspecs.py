"""The hooks a cmmkit plugin can implement.

A plugin is any module exposed through the ``cmmkit`` entry-point group (see ``plugins.py``).
Each hook receives ``register``: a callback (or, for commands, the command line to extend); cmmkit owns the registry, so a duplicate name or an
object of the wrong type is reported with the plugin's name instead of failing later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("cmmkit")
hookimpl = pluggy.HookimplMarker("cmmkit")

Register = Callable[..., None]


@hookspec
def register_modalities(register: Register) -> None:
    """Called once when the registry is first built. Call ``register(ModalityClass)`` for each
    :class:`cmmkit.api.Modality` subclass the plugin provides (its ``name`` is the key).
    Returns nothing."""


@hookspec
def register_pairs(register: Register) -> None:
    """Called once when the registry is first built, after ``register_modalities``.
    Call ``register(pair)`` with an instance of a :class:`cmmkit.api.Pair` subclass for each
    dataset pair (conditioning modality y -> generated modality x). Returns nothing."""


@hookspec
def register_models(register: Register) -> None:
    """Called once when the registry is first built. Call ``register(ModelClass)`` for each
    :class:`cmmkit.api.ConditionalModel` subclass (its ``name`` is the key).
    Returns nothing."""




@hookspec
def register_commands(register: Any) -> None:
    """Called once when the ``cmmkit`` command line is built. ``register`` is a
    :class:`cmmkit.api.CommandLine`: add commands (``register.command``), condition flags of
    ``cmmkit generate`` (``register.condition``, ``register.generate_option``) or options of a
    core command (``register.option``). Returns nothing."""
