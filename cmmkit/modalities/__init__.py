"""Modalities shipped with cmmkit (registered through the ``cmmkit_core`` plugin)."""

from cmmkit.modalities.image import ImageModality, ImageOptions
from cmmkit.modalities.text import TextModality, TextOptions
from cmmkit.modalities.vector import NamedVectorModality, NamedVectorOptions

__all__ = ["ImageModality", "ImageOptions", "NamedVectorModality", "NamedVectorOptions", "TextModality", "TextOptions"]
