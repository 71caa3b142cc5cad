"""Plugins extend the ``cmmkit`` command line through the ``register_commands`` hook (as in
simonw/llm): new commands, condition flags of ``cmmkit generate``, options of core commands.

The core defines no flag that belongs to one pair: a pair plugin adds its own condition flags
(e.g. one that sets a named attribute) and its own commands. A plugin's hook receives a
:class:`CommandLine`::

    @hookimpl
    def register_commands(register):      # register: a CommandLine
        register.condition("--colour", key="colour", help="colour to condition on")
        p = register.command("my-command", help="...")
        p.add_argument("run")
        p.set_defaults(func=my_handler)   # my_handler(args) -> exit code

A plugin that fails in the hook is reported by name in a warning; the others still register.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

CONDITION_PARTS = "condition_parts"  # the Namespace attribute condition flags append to
GENERATE_KWARGS = "generate_kwargs"  # the Namespace attribute generate options fill


class _AppendPart(argparse.Action):
    """Appends ``(flag, key, value)`` to ``namespace.condition_parts`` (parsed later, so that a bad
    value is a one-line error rather than argparse's usage text)."""

    def __init__(self, option_strings: list[str], dest: str, key: str | None = None, **kwargs: Any) -> None:
        self.key = key
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        parts = list(getattr(namespace, CONDITION_PARTS, None) or [])
        parts.append((option_string or self.option_strings[0], self.key, values))
        setattr(namespace, CONDITION_PARTS, parts)


class _Keyword(argparse.Action):
    """Sets ``namespace.generate_kwargs[keyword] = value``."""

    def __init__(self, option_strings: list[str], dest: str, keyword: str = "", **kwargs: Any) -> None:
        self.keyword = keyword
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        setattr(namespace, GENERATE_KWARGS, {**(getattr(namespace, GENERATE_KWARGS, None) or {}), self.keyword: values})


class CommandLine:
    """The ``cmmkit`` command line as the ``register_commands`` hook sees it."""

    def __init__(self, subparsers: Any, commands: dict[str, argparse.ArgumentParser]) -> None:
        self._sub = subparsers
        self._commands = commands  # name -> parser of the core's commands (and those added)
        self.condition_flags: list[str] = []  # "--attr NAME=VALUE", for the "nothing to condition on" message

    def command(self, name: str, *, help: str) -> argparse.ArgumentParser:
        """A new ``cmmkit NAME`` command; give it a handler with ``set_defaults(func=handler)``,
        ``handler(args) -> int`` (exit code; raise :class:`cmmkit.errors.CmmkitError` for a one-line error)."""
        if name in self._commands:
            raise ValueError(f"cmmkit {name} exists already")
        parser = self._sub.add_parser(name, help=help)
        self._commands[name] = parser
        return parser

    def option(self, command: str, *flags: str, **kwargs: Any) -> None:
        """Add an option to an existing command, as ``ArgumentParser.add_argument`` (e.g. a
        pair's own name for a core option: ``option("figure", "--items", dest="examples", ...)``).
        A flag the command has already is left as it is (two plugins may add the same one)."""
        parser = self._commands[command]
        if not any(f in parser._option_string_actions for f in flags):
            parser.add_argument(*flags, **kwargs)

    def condition(self, flag: str, *, key: str | None = None, help: str, metavar: str | None = None) -> None:
        """A ``cmmkit generate`` flag that sets part of each condition: with ``key``, the flag's
        value under that key (``--colour red`` -> ``{"colour": "red"}``); without,
        repeatable ``NAME=VALUE`` pairs (``--attr Male=1`` -> ``{"Male": "1"}``). Values stay
        strings: the run's y modality checks and converts them."""
        metavar = metavar or ("NAME=VALUE" if key is None else key.upper())
        parser = self._commands["generate"]
        if flag in parser._option_string_actions:
            return
        parser.add_argument(flag, action=_AppendPart, key=key, metavar=metavar, help=help, dest=f"_cond_{flag.lstrip('-')}",
                            default=argparse.SUPPRESS)
        self.condition_flags.append(f"{flag} {metavar}")

    def generate_option(self, flag: str, *, keyword: str, help: str, choices: list[str] | None = None) -> None:
        """A ``cmmkit generate`` flag passed on as ``TrainedRun.generate(..., keyword=value)``
        (e.g. ``--base mean``, which the named-vector modality reads)."""
        parser = self._commands["generate"]
        if flag not in parser._option_string_actions:
            parser.add_argument(flag, action=_Keyword, keyword=keyword, choices=choices, help=help,
                                dest=f"_kw_{flag.lstrip('-')}", default=argparse.SUPPRESS)


def extend(subparsers: Any, commands: dict[str, argparse.ArgumentParser]) -> CommandLine:
    """Run every plugin's ``register_commands`` on the parsers of the core's ``commands``."""
    cli = CommandLine(subparsers, commands)
    from cmmkit.plugins import load_plugins

    for impl in load_plugins().hook.register_commands.get_hookimpls():
        try:
            impl.function(register=cli)
        except Exception as exc:  # a broken plugin must not take the command line down
            warnings.warn(f"cmmkit plugin {impl.plugin_name!r} failed in register_commands: {exc!r}", stacklevel=2)
    commands["generate"].set_defaults(condition_flags=list(cli.condition_flags))
    return cli
