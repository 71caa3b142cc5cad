"""Run configs: pydantic models for pair, model, data and training, validated at the edge.

A run config is built from, in order: the pair's preset (``default`` unless ``--preset`` names
another), a YAML/JSON file, ``--set a.b=value`` overrides (parsed as YAML scalars) and the typed
values of the command's own options (``--data-dir``, ``--epochs``, ...; never turned into strings),
merged as plain dicts and then validated once by :class:`RunConfig` itself. The ``pair`` and ``model`` sections are validated with the config classes their
plugins declare, so a typo anywhere is reported with the field's dotted path and a suggestion.
"""

from __future__ import annotations

import copy
import difflib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from cmmkit.errors import ConfigError, suggest
from cmmkit.models.base import ModelConfig
from cmmkit.pair import PairConfig

#: The model trained when neither the command, the config file nor the preset names one.
DEFAULT_MODEL = "cmma"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Options(_Strict):
    """Base of a command's options (``EvalOptions``, ...): validated on construction; a bad value is
    a :class:`ConfigError` naming the command-line flag (``--k: Input should be greater than 0``)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError("; ".join(_flag_error(e) for e in exc.errors())) from None


def _flag_error(err: Any) -> str:
    flag = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "options"
    if err["type"] == "extra_forbidden":
        return f"{flag}: unknown option"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{flag} {err['input']!r}: {msg}" if "input" in err and not isinstance(err["input"], dict) else f"{flag}: {msg}"


class DataConfig(_Strict):
    data_dir: Path | None = Field(None, description="folder holding this pair's files (else $CMMKIT_DATA/<dataset>, else the cache)")
    download: bool = Field(True, description="download missing official files on first use")

    @field_validator("data_dir")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None  # a quoted "~/data" means the home folder


class OptimizerConfig(_Strict):
    name: str = Field("Adagrad", description="any torch.optim class name (Adagrad as in the paper)")
    lr: float = Field(0.01, gt=0)
    kwargs: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments for the optimizer")


class SpeedConfig(_Strict):
    """How the training step uses the hardware (docs/training.md, "Speed"). None changes the
    model; each changes results at most by float rounding (``autocast`` by bf16 rounding)."""

    fused_optimizer: bool = Field(True, description="the optimizer's fused kernel (Adam, AdamW, SGD, Adagrad) "
                                  "unless train.optimizer.kwargs sets fused or foreach; 2.7x faster Adam on CPU")
    compile: bool = Field(False, description="torch.compile the model's training_loss (off: on this CPU it "
                          "cost 2 min to compile and made the reference pair's step 15% slower)")
    channels_last: Literal["auto", "on", "off"] = Field(
        "auto", description="channels_last weights and images (auto: on CUDA only; no gain measured on CPU)")
    autocast: Literal["off", "bf16", "auto"] = Field(
        "off", description="bf16 mixed precision of the loss's forward pass where the hardware computes bf16 "
        "natively (CPUs with AVX512-BF16 or AMX, CUDA devices with bf16); bf16 warns elsewhere and auto stays "
        "in float32 silently")
    tf32: bool = Field(True, description="TF32 matmuls and convolutions on CUDA (Ampere and newer)")
    pin_memory: bool = Field(True, description="page-locked batches copied with non_blocking=True on CUDA")
    reuse_freed_memory: Literal["auto", "on", "off"] = Field(
        "auto", description="keep freed tensor memory in glibc's heap for the next step instead of unmapping it "
        "(auto: on CPU; no page faults per step; process-wide, cannot be undone in the process)")


class TrainConfig(_Strict):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig()
    group_optimizers: dict[str, OptimizerConfig] = Field(
        default_factory=dict, description="per optimizer-group overrides (e.g. a GAN's discriminator)")
    seed: int = 0
    device: str = Field("auto", description="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1', ...")
    grid_examples: int = Field(32, ge=0, description="validation examples in the per-epoch PNG grid")
    val_seed: int = Field(1234, description="seed of the validation bound's noise, fixed across epochs")
    max_val_examples: int | None = Field(None, ge=1, description="cap on validation examples per epoch")
    tensorboard: Literal["auto", "on", "off"] = "auto"
    warmup_steps: int = Field(0, ge=0, description="learning rate rises linearly from 0 over this many steps "
                              "(Transformers trained with Adam need it)")
    lr_schedule: Literal["constant", "inverse_sqrt", "linear", "cosine"] = Field(
        "constant", description="after warm-up: keep the rate; decay it as sqrt(warmup_steps / step) (Vaswani "
                                "et al. 2017); or decay it linearly / along a half cosine to train.min_lr_fraction "
                                "of it at the end of train.epochs (by training progress, so resuming is exact)")
    min_lr_fraction: float = Field(0.0, ge=0, le=1, description="where the linear and cosine schedules end, "
                                   "as a fraction of the configured rate")
    decay_fraction: float = Field(1.0, gt=0, le=1, description="linear and cosine schedules: decay over this last "
                                  "fraction of training only, at the full rate before (warmup-stable-decay); 1: "
                                  "over the whole run")
    grad_clip_norm: float | None = Field(None, gt=0, description="clip each optimizer's gradients to this total "
                                         "L2 norm before it steps (torch.nn.utils.clip_grad_norm_); None: no clipping")
    checkpoint_every_minutes: float = Field(
        5.0, ge=0, description="also checkpoint mid-epoch after this many minutes of training (0: only at epoch "
                               "ends); a SIGKILL loses at most this much work")
    speed: SpeedConfig = Field(default_factory=SpeedConfig, description="hardware settings of the step")


class RunConfig(_Strict):
    """A whole run's config. ``pair`` and ``model`` are validated with the config classes their
    plugins declare (``RunConfig.model_validate(raw)`` does it; :func:`validate` gives every
    problem with its dotted path first)."""

    pair: SerializeAsAny[PairConfig]
    model: SerializeAsAny[ModelConfig]
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()

    @model_validator(mode="before")
    @classmethod
    def _plugin_sections(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        out = dict(raw)
        for key, section_cls in plugin_sections(raw).items():
            value = out.get(key)
            if key == "model" and value is None:
                value = {}
            if isinstance(value, dict):
                if key == "model":
                    value = {"name": section_cls.name, **value}
                out[key] = section_cls.Config.model_validate(value)
        return out


def model_name(*layers: dict[str, Any] | None) -> str:
    """The model a config names: ``model.name`` of the first layer that has one, else
    :data:`DEFAULT_MODEL`. The one place a missing model name is resolved."""
    for layer in layers:
        model = (layer or {}).get("model")
        if isinstance(model, dict) and model.get("name"):
            return str(model["name"])
    return DEFAULT_MODEL


def plugin_sections(raw: dict[str, Any]) -> dict[str, Any]:
    """``{"pair": the Pair, "model": the model class}`` that ``raw`` names (those it can name)."""
    from cmmkit.registry import get_registry

    reg = get_registry()
    out: dict[str, Any] = {}
    pair_raw = raw.get("pair")
    if isinstance(pair_raw, dict) and "name" in pair_raw:
        out["pair"] = reg.pair(str(pair_raw["name"]))
    if raw.get("model") is None or isinstance(raw.get("model"), dict):
        out["model"] = reg.model(model_name(raw))
    return out


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (override wins)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


_YAML11_WORDS = {"on", "off", "yes", "no", "y", "n"}  # YAML 1.1 booleans that are also words


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["train.optimizer.lr=0.1", "model.posterior=x"]`` -> nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY.SUB=VALUE, e.g. train.epochs=5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if raw.strip().lower() in _YAML11_WORDS:
            value = raw.strip()  # `tensorboard=off` is the word; pydantic still reads it for a bool field
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is set both as a value and as a section")
        node[parts[-1]] = value
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); a config file is YAML "
                          "or JSON") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with sections pair/model/data/train, got {type(data).__name__}")
    _check_sections(data, str(path))
    return data


def _check_sections(raw: dict[str, Any], where: str) -> None:
    """Each present section must be a mapping (``model: cvae`` is a common slip for ``model: {name: cvae}``)."""
    for key in ("pair", "model", "data", "train"):
        value = raw.get(key)
        if value is not None and not isinstance(value, dict):
            example = f" (did you mean `{key}: {{name: {value}}}`?)" if key in ("pair", "model") else ""
            raise ConfigError(f"{where}: section {key!r} must be a mapping of settings, got "
                              f"{type(value).__name__} {value!r}{example}")


def validate(raw: dict[str, Any]) -> RunConfig:
    """Validate a merged raw config against the pair's and model's own config classes, reporting
    every problem with its dotted path."""
    pair_raw, model_raw = raw.get("pair") or {}, raw.get("model") or {}
    if not isinstance(pair_raw, dict) or "name" not in pair_raw:
        raise ConfigError("pair.name: missing; expected the name of an installed pair (see `cmmkit pairs`)")
    if not isinstance(model_raw, dict):
        raise ConfigError("model: expected a mapping")
    plugins = plugin_sections(raw)
    sections = {"pair": plugins["pair"].Config, "model": plugins["model"].Config, "data": DataConfig,
                "train": TrainConfig}
    unknown = set(raw) - set(sections)
    if unknown:
        key = sorted(unknown)[0]
        hint = suggest(key, sections) or _suggest_nested(key, sections)
        raise ConfigError(f"{key}: unknown section.{hint} Expected: {', '.join(sections)}")
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, cls in sections.items():
        section = raw.get(key) or {}
        if key == "model":
            section = {"name": plugins["model"].name, **section}
        try:
            values[key] = cls.model_validate(section)
        except ValidationError as exc:
            problems += [_describe(key, cls, err) for err in exc.errors()]
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return RunConfig(**values)


def _keys(model: Any, prefix: str = "") -> list[str]:
    """Dotted keys of a pydantic model's fields, sub-sections included (``optimizer.lr``)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    out = []
    for name, field in model.model_fields.items():
        out.append(prefix + name)
        out += _keys(field.annotation, f"{prefix}{name}.")
    return out


def _suggest_nested(name: str, sections: dict[str, Any]) -> str:
    """``lr`` -> `` Did you mean 'train.optimizer.lr'?`` (a key of a sub-section with that name, or close to it)."""
    keys = [f"{s}.{k}" for s, cls in sections.items() for k in _keys(cls)]
    return _leaf_match(name, keys)


def _leaf_match(name: str, keys: list[str]) -> str:
    exact = [k for k in keys if "." in k and k.rsplit(".", 1)[1] == name]
    if exact:
        return f" Did you mean {exact[0]!r}?"
    leaves = {k.rsplit(".", 1)[1]: k for k in reversed(keys) if "." in k}
    match = difflib.get_close_matches(name, list(leaves), n=1, cutoff=0.6)
    return f" Did you mean {leaves[match[0]]!r}?" if match else ""


def _describe(section: str, cls: type[BaseModel], err: Any) -> str:
    loc = [str(p) for p in err["loc"]]
    path = ".".join([section, *loc])
    if err["type"] == "extra_forbidden":
        model: Any = cls
        for part in loc[:-1]:  # walk to the model that owns the unknown key
            field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
            model = field.annotation if field is not None else None
        known = list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
        hint = suggest(loc[-1], known) or _leaf_match(loc[-1], _keys(model))  # train.lr -> optimizer.lr
        return f"{path}: unknown key.{hint}" + (f" Known keys: {', '.join(known)}" if known else "")
    got = err.get("input")
    return f"{path}: {err['msg']} (got {got!r})"


def build_config(pair: str | None = None, preset: str | None = None, file: str | Path | None = None,
                 sets: list[str] | None = None, base: dict[str, Any] | None = None,
                 model: str | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Merge preset, file, ``--set`` strings and typed ``overrides`` (a nested dict of values
    already of their type, e.g. ``{"data": {"data_dir": Path("2024")}}``; they win), then validate.
    ``base`` (e.g. a saved run's config) replaces the preset when given.

    A preset may hold ``models: {name: partial config}``: sizes and training settings for each
    model, merged in for the chosen model (``model``, else ``model.name`` from the overrides, the
    file or the preset, else :data:`DEFAULT_MODEL`).
    """
    from cmmkit.registry import get_registry

    file_raw = read_config_file(file) if file else {}
    set_raw = parse_set(sets or [])
    _check_sections(set_raw, "--set")
    set_raw = deep_merge(set_raw, overrides or {})
    if model:
        set_raw = deep_merge(set_raw, {"model": {"name": model}})
    name = pair or set_raw.get("pair", {}).get("name") or file_raw.get("pair", {}).get("name") \
        or (base or {}).get("pair", {}).get("name")
    if not name:
        raise ConfigError("no pair given: pass --pair NAME (see `cmmkit pairs`)")
    if base is None:
        presets = get_registry().pair(name).presets()
        chosen = preset or "default"
        if chosen not in presets:
            raise ConfigError(f"unknown preset {chosen!r} for pair {name!r}.{suggest(chosen, presets)} "
                              f"Available: {', '.join(sorted(presets))}")
        base = copy.deepcopy(presets[chosen])
        per_model = base.pop("models", {})
        chosen_model = model_name(set_raw, file_raw, base)
        if chosen_model != (base.get("model") or {}).get("name", chosen_model):
            base.pop("model", None)  # the preset's model section describes another model
        base = deep_merge(base, per_model.get(chosen_model, {}))
        base = deep_merge(base, {"model": {"name": chosen_model}})
    raw = deep_merge(deep_merge(base, file_raw), set_raw)
    raw = deep_merge(raw, {"pair": {"name": name}})
    return validate(raw)


def dump(config: RunConfig) -> dict[str, Any]:
    """A JSON-compatible dict of the effective config (round-trips through :func:`validate`)."""
    return config.model_dump(mode="json")
