"""cmmkit: conditional multimodal generation with the CMMA of Pandey & Dukkipati, plus plugins.

    >>> import cmmkit
    >>> cmmkit.list_pairs()                      # what the installed plugins provide
    >>> run = cmmkit.load_run("runs/my-run")     # a folder written by `cmmkit train`
    >>> faces = run.generate({"Male": 1, "Eyeglasses": 1})   # PIL images
    >>> edited, attrs = run.edit(["face.jpg"], {"Mustache": 1})   # §4.5
    >>> cmmkit.make_figure("fig6", ["runs/my-run"], Path("fig6.png"))

Writing a plugin (a pair, modality, model or command)? Import from :mod:`cmmkit.api` only.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any

from cmmkit.errors import CheckpointError, CmmkitError, ConfigError, DataError, PluginError
from cmmkit.logs import install as _install_logging
from cmmkit.registry import get_registry

_install_logging()  # cmmkit's messages go to stderr (see cmmkit.logs)


def list_pairs() -> list[str]:
    """Names of the installed pairs."""
    return get_registry().pairs.names()


def __getattr__(name: str) -> Any:
    # Heavier modules load on first use so that `import cmmkit` stays quick.
    if name in {"load_run", "train", "resume", "TrainedRun"}:
        from cmmkit import runs

        return getattr(runs, name)
    if name in {"build_config", "RunConfig"}:
        from cmmkit import config

        return getattr(config, name)
    if name == "make_figure":
        from cmmkit.figures import make_figure

        return make_figure
    if name in {"CMMA", "CMMAConfig", "ConditionalModel"}:
        from cmmkit import models

        return getattr(models, name)
    raise AttributeError(f"module 'cmmkit' has no attribute {name!r}")


def generate(run: Any, conditions: Any, noise_scale: float = 0.0, n: int = 1) -> list[Any]:
    """Generate from a run folder path or a loaded run: ``cmmkit.generate("runs/x", {"Male": 1})``."""
    from cmmkit.runs import TrainedRun, load_run

    loaded = run if isinstance(run, TrainedRun) else load_run(run)
    return loaded.generate(conditions, noise_scale=noise_scale, n=n)


__all__ = ["CheckpointError", "CmmkitError", "ConfigError", "DataError", "PluginError", "generate",
           "get_registry", "list_pairs", "load_run", "resume", "train", "build_config", "RunConfig",
           "CMMA", "CMMAConfig", "ConditionalModel", "TrainedRun", "make_figure", "__version__"]
