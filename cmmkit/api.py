"""The public API for plugin authors: everything a pair, modality, model or command plugin uses.

A plugin imports from here and nowhere else in cmmkit (the built-in pairs do too; an import
contract in ``pyproject.toml``, checked by the test suite, enforces it). What is listed here keeps
its name and meaning; the modules behind it may move.

    from cmmkit.api import Pair, PairConfig, PairData, TensorPairDataset, hookimpl

Groups (see ``docs/plugins/index.md``):

- hooks: :data:`hookimpl`, :data:`Register`, :class:`CommandLine` (``register_commands``);
- pairs: :class:`Pair`, :class:`PairConfig`, :class:`PairData`, :class:`PairDataset`,
  :class:`TensorPairDataset`;
- modalities: :class:`Modality`, :class:`ModalityOptions`, :class:`Decoder`, ``Value``,
  :func:`to_device`, :func:`select`, :func:`repeat`, the built-in image / named-vector / text
  modalities and their options, :func:`vector_info`, and the text helpers :func:`encode`,
  :func:`pad`, :class:`Specials`, :func:`fingerprint`, :func:`load_tokenizer`, :func:`text_info`;
- models and judges: :class:`ConditionalModel`, :class:`ModelConfig`, :class:`Classifier`,
  :class:`ClassifierConfig`, :func:`load_judge`, :class:`DiagonalGaussian`,
  :func:`gaussian_log_prob`;
- data: :class:`RemoteFile`, :func:`fetch`, :func:`file_digest`, :func:`cache_root`,
  :func:`resolve_dataset_dir`, atomic writing (:func:`atomic_path`, :func:`atomic_write`,
  :func:`atomic_write_bytes`), :func:`no_bar` for progress bars, :func:`require` for extras;
- runs: :class:`TrainedRun`, :func:`load_run`, :func:`load_data`;
- measures and reports: :class:`EvalContext`, :func:`write_json`, :func:`per_attribute_auc`,
  :func:`mean_auc`, :class:`ReportSection`, :class:`Column`, :data:`DASH`, :func:`number`,
  :func:`markdown_table`;
- figures: :class:`FigureOptions`, :func:`load_split`, :func:`panel_title`,
  :func:`labelled_grid`;
- demo: :class:`PairDemo`, :class:`ModalityDemo`, :class:`Example`, :class:`View`,
  :class:`Choice`, :class:`Slider`, :class:`Text`, :func:`audio_clip`, :func:`heatmap`;
- errors and options: :class:`CmmkitError`, :class:`ConfigError`, :class:`DataError`,
  :class:`CheckpointError`, :class:`PluginError`, :func:`suggest`, :class:`Options`,
  :func:`build_config`, :func:`get_pair`;
- testing a plugin: :func:`registered`, :func:`check_pair`, :func:`check_modality`,
  :class:`ConformanceError` (see ``docs/plugins/testing.md``).

Names load on first use (``from cmmkit.api import Pair`` imports the pair interface, not the
trainer), so a plugin's ``__init__`` that imports only :data:`hookimpl` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cmmkit import __version__  # the package is imported with this module anyway

#: public name -> the module that defines it
_WHERE: dict[str, str] = {
    **dict.fromkeys(["hookimpl", "Register"], "cmmkit.hookspecs"),
    **dict.fromkeys(["CommandLine"], "cmmkit.cli_plugins"),
    **dict.fromkeys(["Pair", "PairConfig", "PairData", "PairDataset", "TensorPairDataset"], "cmmkit.pair"),
    **dict.fromkeys(["Modality", "ModalityOptions", "Decoder", "Value", "to_device", "select", "repeat"],
                    "cmmkit.modality"),
    **dict.fromkeys(["ImageModality", "ImageOptions", "NamedVectorModality", "NamedVectorOptions", "TextModality",
                     "TextOptions"], "cmmkit.modalities"),
    **dict.fromkeys(["vector_info"], "cmmkit.modalities.vector"),
    **dict.fromkeys(["encode", "pad", "Specials", "fingerprint", "load_tokenizer", "text_info"],
                    "cmmkit.modalities.text"),
    **dict.fromkeys(["ConditionalModel", "ModelConfig"], "cmmkit.models.base"),
    **dict.fromkeys(["Classifier", "ClassifierConfig"], "cmmkit.models.judge"),
    **dict.fromkeys(["DiagonalGaussian", "gaussian_log_prob"], "cmmkit.distributions"),
    **dict.fromkeys(["RemoteFile", "fetch", "file_digest", "cache_root", "resolve_dataset_dir", "atomic_path",
                     "atomic_write", "atomic_write_bytes"], "cmmkit.data.download"),
    **dict.fromkeys(["no_bar"], "cmmkit.logs"),
    **dict.fromkeys(["TrainedRun", "load_run", "load_data", "load_judge"], "cmmkit.runs"),
    **dict.fromkeys(["EvalContext", "write_json"], "cmmkit.evaluation.evaluate"),
    **dict.fromkeys(["per_attribute_auc", "mean_auc"], "cmmkit.evaluation.auc"),
    **dict.fromkeys(["ReportSection", "Column", "DASH", "number", "markdown_table"], "cmmkit.report"),
    **dict.fromkeys(["FigureOptions", "load_split", "panel_title"], "cmmkit.figures"),
    **dict.fromkeys(["labelled_grid"], "cmmkit.images"),
    **dict.fromkeys(["PairDemo", "ModalityDemo", "Example", "View", "Choice", "Slider", "Text", "audio_clip",
                     "heatmap"], "cmmkit.demo.spec"),
    **dict.fromkeys(["CmmkitError", "ConfigError", "DataError", "CheckpointError", "PluginError", "suggest"],
                    "cmmkit.errors"),
    **dict.fromkeys(["Options", "build_config"], "cmmkit.config"),
    **dict.fromkeys(["check_pair", "check_modality", "registered", "ConformanceError"], "cmmkit.testing"),
}

__all__ = sorted([*_WHERE, "get_pair", "require", "__version__"])


def get_pair(name: str) -> Any:
    """The installed pair registered as ``name`` (a :class:`Pair` instance)."""
    from cmmkit.registry import get_registry

    return get_registry().pair(name)


def require(module: str, extra: str) -> Any:
    """Import ``module``, an optional dependency of a plugin, or raise a :class:`ConfigError`
    saying which extra installs it: ``audio = require("somelib", "myextra")``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        from cmmkit.errors import ConfigError

        raise ConfigError(f"this needs {module}, which is not installed ({exc}); install it with "
                          f"pip install 'cmmkit[{extra}]'") from None


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'cmmkit.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and editors; at run time the names load on first use
    from cmmkit.cli_plugins import CommandLine
    from cmmkit.config import Options, build_config
    from cmmkit.data.download import (
        RemoteFile,
        atomic_path,
        atomic_write,
        atomic_write_bytes,
        cache_root,
        fetch,
        file_digest,
        resolve_dataset_dir,
    )
    from cmmkit.demo.spec import Choice, Example, ModalityDemo, PairDemo, Slider, Text, View, audio_clip, heatmap
    from cmmkit.distributions import DiagonalGaussian, gaussian_log_prob
    from cmmkit.errors import CheckpointError, CmmkitError, ConfigError, DataError, PluginError, suggest
    from cmmkit.evaluation.auc import mean_auc, per_attribute_auc
    from cmmkit.evaluation.evaluate import EvalContext, write_json
    from cmmkit.figures import FigureOptions, load_split, panel_title
    from cmmkit.hookspecs import Register, hookimpl
    from cmmkit.images import labelled_grid
    from cmmkit.logs import no_bar
    from cmmkit.modalities import (
        ImageModality,
        ImageOptions,
        NamedVectorModality,
        NamedVectorOptions,
        TextModality,
        TextOptions,
    )
    from cmmkit.modalities.text import Specials, encode, fingerprint, load_tokenizer, pad, text_info
    from cmmkit.modalities.vector import vector_info
    from cmmkit.modality import Decoder, Modality, ModalityOptions, Value, repeat, select, to_device
    from cmmkit.models.base import ConditionalModel, ModelConfig
    from cmmkit.models.judge import Classifier, ClassifierConfig
    from cmmkit.pair import Pair, PairConfig, PairData, PairDataset, TensorPairDataset
    from cmmkit.report import DASH, Column, ReportSection, markdown_table, number
    from cmmkit.runs import TrainedRun, load_data, load_judge, load_run
    from cmmkit.testing import ConformanceError, check_modality, check_pair, registered
