"""Errors a user can act on.

Every error raised for bad input derives from :class:`CmmkitError`; the CLI prints its message
without a traceback. Messages name the file, line or field and say what was expected.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CmmkitError(Exception):
    """Base class: a problem with the user's input or environment, not a bug in cmmkit."""


class ConfigError(CmmkitError):
    """A config value or key is invalid."""


class DataError(CmmkitError):
    """A data file is missing, malformed or fails verification."""


class CheckpointError(CmmkitError):
    """A checkpoint or run folder is missing, truncated, tampered with or incompatible."""


class PluginError(CmmkitError):
    """A plugin registered something invalid (duplicate name, wrong type)."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or an empty string."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {match[0]!r}?" if match else ""
