"""The register_commands hook: plugins add commands, condition flags of `cmmkit generate` and options
of core commands; the core defines no pair's flags; a broken plugin is reported by name."""

from __future__ import annotations

import argparse
import warnings

import pytest

from cmmkit.cli import main, make_parser
from cmmkit.cli_tasks import conditions
from cmmkit.errors import ConfigError
from cmmkit.hookspecs import hookimpl
from cmmkit.testing import registered


def _called(args: argparse.Namespace) -> int:
    print(f"hello {args.who}")
    return 0


class _Plugin:
    @hookimpl
    def register_commands(self, register):
        cli = register
        cli.condition("--colour", key="colour", help="a colour")
        cli.condition("--attr", help="added twice: kept once")  # the LFW plugin has it already
        cli.generate_option("--shade", keyword="shade", choices=["dark", "light"], help="a keyword")
        cli.option("figure", "--panels", dest="examples", type=int, nargs="+", help="alias")
        p = cli.command("hello", help="say hello")
        p.add_argument("who")
        p.set_defaults(func=_called)


class _Broken:
    @hookimpl
    def register_commands(self, register):
        raise RuntimeError("no commands today")


def test_plugins_add_commands_flags_and_options(capsys):
    with registered(_Plugin(), "cli_test_plugin"):
        assert main(["hello", "world"]) == 0
        assert "hello world" in capsys.readouterr().out
        args = make_parser().parse_args(["generate", "run", "--attr", "Male=1", "--colour", "red", "--attr", "a b=2",
                                         "--shade", "dark", "--text", "t", "-o", "x.png"])
        assert conditions(args) == [{"Male": "1", "colour": "red", "a b": "2", "text": "t"}]
        assert args.generate_kwargs == {"shade": "dark"}
        assert make_parser().parse_args(["figure", "fig8", "r", "-o", "f.png", "--panels", "1", "2"]).examples == [1, 2]


def test_the_pair_flags_come_from_their_plugins():
    sub = next(a for a in make_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flags = sub.choices["generate"]._option_string_actions
    assert {"--attr", "--base", "--speaker"} <= set(flags)  # LFW's and FSDD's
    assert "evaluate-edits" in sub.choices and "--faces" in sub.choices["figure"]._option_string_actions
    bare = argparse.Namespace(text=None, input=None, condition_flags=["--attr NAME=VALUE"])
    with pytest.raises(ConfigError, match="nothing to condition on: give --attr NAME=VALUE, --text TEXT or --input FILE"):
        conditions(bare)
    with pytest.raises(ConfigError, match="--attr 'Male': expected NAME=VALUE"):
        conditions(argparse.Namespace(text=None, input=None, condition_parts=[("--attr", None, "Male")]))


def test_a_broken_plugin_warns_by_name_and_the_rest_works():
    with registered(_Broken(), "broken_cli"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parser = make_parser()
    assert any("'broken_cli'" in str(w.message) and "no commands today" in str(w.message) for w in caught)
    assert parser.parse_args(["pairs"]).command == "pairs"
