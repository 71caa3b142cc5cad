"""The reference pair ``lfw_faces_attrs``: LFWcrop colour faces generated from the 73 LFW
attributes of Kumar et al. It registers through the ``cmmkit`` entry-point group exactly like a
third-party pair, and uses only :mod:`cmmkit.api`.

Besides the pair it provides the ``attribute_judge`` model (``cmmkit train-judge``), the
attribute-fidelity measure and its report columns, the ``--attr``/``--base``/``--faces`` flags
and the ``evaluate-edits`` command."""

from __future__ import annotations

from typing import Any

from cmmkit.api import Register, hookimpl

__version__ = "0.1.0"


@hookimpl
def register_pairs(register: Register) -> None:
    from cmmkit_lfw.pair import LFWFacesAttrs

    register(LFWFacesAttrs())


@hookimpl
def register_models(register: Register) -> None:
    from cmmkit_lfw.judge import AttributeJudge

    register(AttributeJudge)


@hookimpl
def register_commands(register: Any) -> None:
    from cmmkit_lfw.commands import register as register_lfw_commands

    register_lfw_commands(register)
