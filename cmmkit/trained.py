"""A trained run as users meet it: its model and modalities, turning users' values into
conditions, outputs, edits and inferred conditions (``cmmkit.load_run`` returns one)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cmmkit.config import RunConfig
from cmmkit.errors import CmmkitError, ConfigError
from cmmkit.modality import Modality, Value, batch_size, select, to_device
from cmmkit.models.base import ConditionalModel
from cmmkit.pair import Pair

#: At most this many outputs per :meth:`TrainedRun.generate` call (conditions x ``n``); the model
#: runs on chunks of :data:`GENERATE_CHUNK`, so memory stays bounded.
MAX_GENERATE = 10_000
GENERATE_CHUNK = 256


class TrainedRun:
    """A trained model with its pair and config, ready to generate."""

    def __init__(self, path: Path, config: RunConfig, pair: Pair, model: ConditionalModel,
                 meta: dict[str, Any]) -> None:
        self.path, self.config, self.pair, self.model, self.meta = path, config, pair, model, meta

    @property
    def x(self) -> Modality:
        return self.model.x

    @property
    def y(self) -> Modality:
        return self.model.y

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prepare_x(self, examples: list[Any]) -> Value:
        """Users' x (the x modality's user form: files, images, sentences...) as the model reads
        them: read and converted once (``from_user``, then ``prepare`` without dequantization), on
        this run's device. :meth:`edit` and :meth:`infer` accept the result in place of the examples,
        so a caller editing the same examples twice converts them once."""
        return self.x.prepare(to_device(self.x.from_user(list(examples)), self.device), dequantize=False)

    def prepare_y(self, conditions: list[Any], options: Mapping[str, Any] | None = None) -> Value:
        """Users' conditions as the model reads them (``from_user`` with the y modality's
        ``options``, then ``prepare``), on this run's device."""
        raw = self.y.from_user(list(conditions), **_user_options(self.y, options))
        return self.y.prepare(to_device(raw, self.device), dequantize=False)

    @torch.no_grad()
    def generate(self, conditions: Any, noise_scale: float = 0.0, n: int = 1, output_noise: float | None = None,
                 *, condition_options: Mapping[str, Any] | None = None) -> list[Any]:
        """Generate x for each condition (users' form, e.g. ``{"Male": 1, "Eyeglasses": 1}``; a
        single mapping is one condition). Returns the x modality's user form (e.g. PIL images
        for an image modality), ``n`` per condition in order. ``output_noise`` scales the decoder's own noise
        separately (None: as ``noise_scale``; 0 with ``noise_scale=1`` varies z but shows g's
        mean, e.g. images without pixel noise). ``condition_options`` go to the y modality's
        ``from_user`` (e.g. ``{"base": "mean"}`` for named vectors) and are checked against it."""
        if not self.model.can_generate:
            raise CmmkitError(f"{self.path}: a {self.model.name} run does not generate")
        items = [conditions] if isinstance(conditions, dict) else list(conditions)
        if n < 1 or len(items) * n > MAX_GENERATE:
            raise ConfigError(f"generate: {len(items)} condition(s) x n={n} = {len(items) * n} outputs; expected "
                              f"1 to {MAX_GENERATE} per call (call it several times for more)")
        y = self.y.from_user(items, **_user_options(self.y, condition_options))
        index = torch.arange(len(items)).repeat_interleave(n)
        self.model.eval()
        out: list[Any] = []
        for start in range(0, len(index), GENERATE_CHUNK):  # each example prepared once, with its chunk
            chunk = self.y.prepare(to_device(select(y, index[start:start + GENERATE_CHUNK]), self.device),
                                   dequantize=False)
            out += list(self.x.to_user(self.model.generate(chunk, noise_scale=noise_scale, output_noise=output_noise)))
        return out

    def check_can_edit(self) -> None:
        """Raise the model's own reason when it cannot edit (e.g. a CGAN has no posterior)."""
        if not self.model.can_edit:
            raise ConfigError(f"a {self.model.name} run {self.model.edit_refusal}")

    def _x(self, examples: Any) -> Value:
        """Prepared x of users' examples, or ``examples`` itself when it already is (from :meth:`prepare_x`)."""
        return examples if isinstance(examples, (torch.Tensor, dict)) else self.prepare_x(examples)

    @torch.no_grad()
    def infer(self, examples: Any) -> list[Any]:
        """The condition inferred from each x (the x modality's user form, or their
        :meth:`prepare_x`), in the y modality's user form (e.g. attribute dicts for named vectors)."""
        return self.y.to_user(self.model.infer_y(self._x(examples)))

    @torch.no_grad()
    def edit(self, examples: Any, changes: dict[str, Any], original: list[Any] | None = None,
             infer_with: TrainedRun | None = None) -> tuple[list[Any], list[Any]]:
        """§4.5: each x changed to show ``changes`` (e.g. ``{"Mustache": 1}``). ``examples`` are
        users' x or their :meth:`prepare_x`. ``original`` are the examples' own conditions (users'
        form); those that are None (or all, when ``original`` is None) are inferred from x by
        ``infer_with`` (default this run), as for examples with missing conditions (Fig. 10). Returns
        (edited x in users' form, the original conditions used)."""
        self.check_can_edit()
        x = self._x(examples)
        count = batch_size(x)
        original = [None] * count if original is None else list(original)
        if len(original) != count:
            raise CmmkitError(f"{count} example(s) but {len(original)} original condition(s)")
        unknown = [i for i, o in enumerate(original) if o is None]
        if unknown:
            guesses = iter((infer_with or self)._infer_from(self.x, select(x, torch.tensor(unknown))))
            original = [o if o is not None else next(guesses) for o in original]
        y_orig = self.prepare_y(original)
        y_new = self.prepare_y([{**o, **changes} if isinstance(o, dict) else o for o in original])
        self.model.eval()
        return self.x.to_user(self.model.edit(x, y_orig, y_new)), list(original)

    def _infer_from(self, source: Modality, x: Value) -> list[Any]:
        """:meth:`infer` on x prepared by another run's modality: used as it is when both prepare
        alike (same modality and info), else handed over in users' form."""
        same = type(source) is type(self.x) and source.info == self.x.info
        return self.infer(to_device(x, self.device) if same else source.to_user(x))


def _user_options(modality: Modality, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` for ``modality.from_user``, refused with a clear error when it takes none of that name."""
    options = dict(options or {})
    params = inspect.signature(modality.from_user).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return options
    accepted = [n for n, p in list(params.items())[1:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"condition option(s) {', '.join(map(repr, unknown))}: the {modality.name} modality's "
                          f"conditions take {', '.join(map(repr, accepted)) or 'no options'}")
    return options
