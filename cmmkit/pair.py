"""The pair interface: a dataset of (conditioning y, generated x) examples plus its modalities.

A pair plugin subclasses :class:`Pair` and registers an instance through the ``register_pairs``
hook. Its config is a pydantic model (``Config``) under the ``pair`` key of a run config.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch.utils.data import Dataset, default_collate

from cmmkit.modality import Modality, ModalityOptions
from cmmkit.registry import Registrable, get_registry


class PairConfig(BaseModel):
    """Config of a pair. Subclasses add their own fields; ``x``/``y`` hold modality options."""

    model_config = ConfigDict(extra="forbid")
    name: str
    x: ModalityOptions = ModalityOptions()
    y: ModalityOptions = ModalityOptions()


class PairDataset(Dataset):
    """Examples as ``{"x": raw x value, "y": raw y value}``.

    The trainer asks for whole batches through :meth:`get_batch`; in-memory datasets override it
    with one vectorised index so the data path never limits training speed.
    """

    def get_batch(self, indices: torch.Tensor) -> dict[str, Any]:
        return default_collate([self[int(i)] for i in indices])

    def epoch_batches(self, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
        """The training batches of one epoch, as example indices in training order, drawn from
        ``generator`` (seeded from (seed, epoch), so resuming rebuilds the same order). Default: a random
        permutation cut into ``batch_size`` chunks; variable-length data may batch by size instead
        (e.g. sentences by token count, so short ones do not waste compute on padding)."""
        order = torch.randperm(len(self), generator=generator)
        return [order[i:i + batch_size] for i in range(0, len(self), batch_size)]


class TensorPairDataset(PairDataset):
    """A pair held as two tensors in memory (indexed in one operation per batch)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}

    def get_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": self.x[indices], "y": self.y[indices]}


@dataclass
class PairData:
    """What :meth:`Pair.load` returns: the splits and the data-derived modality info."""

    splits: dict[str, PairDataset]
    info: dict[str, dict[str, Any]]  # {"x": {...}, "y": {...}}, JSON-serialisable
    notes: list[str] = field(default_factory=list)  # things the user should know (e.g. rows left out)


class Pair(Registrable, ABC):
    """A conditional generation task: generate modality x from modality y."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    x_modality: ClassVar[str]  # registered modality names
    y_modality: ClassVar[str]
    Config: ClassVar[type[PairConfig]] = PairConfig
    #: the generic measures of ``cmmkit evaluate`` that make sense for this pair's x (Parzen windows
    #: need a fixed-size real x; the bound and importance sampling need only a likelihood)
    metrics: ClassVar[tuple[str, ...]] = ("bound", "importance_sampling", "parzen")
    #: model trained by ``cmmkit train-judge`` to judge generated x (None: the pair has no judge)
    judge_model: ClassVar[str | None] = None

    def evaluations(self) -> dict[str, Callable[[Any], dict[str, Any] | None]]:
        """Pair-specific measures for ``cmmkit evaluate``: name -> function of an
        :class:`cmmkit.evaluation.evaluate.EvalContext` returning a JSON-able dict (stored in eval.json under
        ``pair_metrics[name]``; its optional ``"summary"`` maps column labels to numbers for
        ``cmmkit report``), or None when it does not apply (e.g. no ``--judge`` given)."""
        return {}

    def report_sections(self) -> list[Any]:
        """How ``cmmkit report`` shows measures of :meth:`evaluations` beyond their ``"summary"``:
        :class:`cmmkit.report.ReportSection` objects (main-table columns, tables, CSV columns,
        warnings), one per measure. None by default."""
        return []

    def presets(self) -> dict[str, dict[str, Any]]:
        """Named partial run configs (nested dicts); ``"default"`` is used when none is named."""
        return {"default": {}}

    def figures(self) -> dict[str, Callable[..., Any]]:
        """Pair-specific figures for ``cmmkit figure NAME``: name -> function of (runs, options)
        returning (PIL image, notes), see :mod:`cmmkit.figures`. None by default."""
        return {}

    def lookup_condition(self, config: PairConfig, data_dir: Path | None, item: Any) -> Any | None:
        """The known condition, in the y modality's user form, of an x a user gives by file (e.g.
        the row a pair's own index file keeps for that file name), or None when unknown
        (then ``cmmkit edit`` infers it from x). ``data_dir`` as in :meth:`load`; never downloads."""
        return None

    @abstractmethod
    def load(self, config: PairConfig, data_dir: Path | None, *, download: bool = True,
             progress: bool = True) -> PairData:
        """Find the data (``data_dir``, else ``$CMMKIT_DATA/<dataset>``, else the cache, downloading
        the official files there when ``download``) and return its splits (``train``, ``val``,
        ``test``). Raise :class:`cmmkit.errors.DataError` saying what to download where when the
        data cannot be had."""

    def modalities(self, config: PairConfig, info: dict[str, dict[str, Any]]) -> tuple[Modality, Modality]:
        """Build (x, y) modalities from the config and the data-derived info."""
        reg = get_registry()
        x_cls, y_cls = reg.modality(self.x_modality), reg.modality(self.y_modality)
        return (x_cls(x_cls.Options.model_validate(config.x.model_dump()), info["x"]),
                y_cls(y_cls.Options.model_validate(config.y.model_dump()), info["y"]))

    def demo_spec(self, config: PairConfig, data_dir: Path | None) -> Any:
        """What ``cmmkit demo`` adds for this pair: a :class:`cmmkit.demo.spec.PairDemo` grouping y's
        controls and listing examples of x to pick (``data_dir`` as in :meth:`load`; never
        downloads), or None (the default): one group, no examples."""
        return None
