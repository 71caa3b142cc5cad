"""The core's own plugin: built-in modalities and models, registered through the same entry-point
group and hooks as any third-party plugin."""

from __future__ import annotations

from cmmkit.hookspecs import Register, hookimpl
from cmmkit.modalities import ImageModality, NamedVectorModality
from cmmkit.models import CGAN, CMMA, CVAE, VAE, AttributeJudge


@hookimpl
def register_modalities(register: Register) -> None:
    register(ImageModality)
    register(NamedVectorModality)


@hookimpl
def register_models(register: Register) -> None:
    for model in (CMMA, CVAE, VAE, CGAN, AttributeJudge):
        register(model)
