"""The translation pair ``multi30k_en_de``: German (or French) sentences generated from English ones
(Multi30k task 1). It registers through the ``cmmkit`` entry-point group like any third-party pair;
the ``text`` modality and the ``direct`` reference model it uses live in the core."""

from __future__ import annotations

from cmmkit.api import Register, hookimpl

__version__ = "0.1.0"


@hookimpl
def register_pairs(register: Register) -> None:
    from cmmkit_multi30k.pair import Multi30kEnDe

    register(Multi30kEnDe())
