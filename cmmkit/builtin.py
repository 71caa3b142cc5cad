"""The core's own plugin: built-in modalities and models, registered through the same entry-point
group and hooks as any third-party plugin. Judges of one pair (e.g. ``attribute_judge``) come with
that pair's plugin."""

from __future__ import annotations

from cmmkit.hookspecs import Register, hookimpl
from cmmkit.modalities import ImageModality, NamedVectorModality, TextModality
from cmmkit.models import CGAN, CMMA, CVAE, VAE, Direct


@hookimpl
def register_modalities(register: Register) -> None:
    register(ImageModality)
    register(NamedVectorModality)
    register(TextModality)


@hookimpl
def register_models(register: Register) -> None:
    for model in (CMMA, CVAE, VAE, CGAN, Direct):
        register(model)
