"""The reference pair ``lfw_faces_attrs``: LFWcrop colour faces generated from the 73 LFW
attributes of Kumar et al. It registers through the ``cmmkit`` entry-point group exactly like a
third-party pair."""

from __future__ import annotations

from cmmkit.hookspecs import Register, hookimpl

__version__ = "0.1.0"


@hookimpl
def register_pairs(register: Register) -> None:
    from cmmkit_lfw.pair import LFWFacesAttrs

    register(LFWFacesAttrs())
