"""Train, resume and load runs: the library side of ``cmmkit train`` and of ``import cmmkit``."""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

import torch

from cmmkit import __version__
from cmmkit.config import RunConfig, build_config, dump, validate
from cmmkit.config_changes import resume_changes, with_decode_settings
from cmmkit.errors import CheckpointError, CmmkitError, ConfigError
from cmmkit.models.base import ConditionalModel
from cmmkit.pair import Pair, PairData
from cmmkit.plugins import plugin_version
from cmmkit.registry import get_registry
from cmmkit.trained import TrainedRun  # re-exported: cmmkit.runs.TrainedRun is public
from cmmkit.training import distributed
from cmmkit.training.checkpoint import nonfinite
from cmmkit.training.distributed import Dist
from cmmkit.training.optim import pick_device, schedule_jump
from cmmkit.training.rundir import RunDir
from cmmkit.training.trainer import Trainer

log = logging.getLogger(__name__)

def build_model(config: RunConfig, info: dict[str, Any]) -> tuple[Pair, ConditionalModel]:
    """The pair and a freshly initialised model for ``config`` and the data-derived ``info``."""
    reg = get_registry()
    pair = reg.pair(config.pair.name)
    x, y = pair.modalities(config.pair, info)
    model = reg.model(config.model.name)(config.model, x, y)
    return pair, model


def load_data(config: RunConfig, *, data_dir: str | Path | None = None, progress: bool = True,
              notes: bool = True) -> PairData:
    """The pair's data for ``config``; ``data_dir`` (e.g. a command's ``--data-dir``) replaces the
    config's ``data.data_dir`` when given."""
    pair = get_registry().pair(config.pair.name)
    folder = Path(data_dir) if data_dir is not None else config.data.data_dir
    data = pair.load(config.pair, folder, download=config.data.download, progress=progress)
    for note in data.notes if notes else []:
        log.info("[%s] %s", pair.name, note)
    return data


def _load_data_ranks(d: Dist, config: RunConfig, progress: bool) -> PairData:
    """Rank 0 loads first (it may download or build the decoded cache), then the other ranks."""
    data = d.on_main(lambda: load_data(config, progress=progress))
    return data if d.is_main else load_data(config, progress=False, notes=False)


def _meta(config: RunConfig, pair: Pair, data_info: dict[str, Any]) -> dict[str, Any]:
    reg = get_registry()
    plugin = reg.pairs.entries[pair.name].plugin
    dist, version = plugin_version(plugin)
    return {"cmmkit_version": __version__, "config": dump(config), "data_info": data_info,
            "pair_plugin": {"plugin": plugin, "distribution": dist, "version": version}}


def default_run_dir(config: RunConfig) -> Path:
    return Path("runs") / f"{config.pair.name}-{config.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(config: RunConfig, out: str | Path | None = None, *, progress: bool = True) -> TrainedRun:
    """Train a new run of ``config`` into ``out`` (default ``runs/<pair>-<model>-<time>``).

    The folder is locked for the process's life (a second training into it fails at once, naming
    this one); a checkpoint is written before the first step, so a run folder is always resumable."""
    d = distributed.setup()  # under torchrun: rank 0 owns the folder, all ranks train
    path = Path(d.gather(str(Path(out) if out else default_run_dir(config)))[0])
    run = RunDir(path)
    created = d.gather(not path.exists())[0]

    def take() -> None:
        run.acquire("cmmkit train")  # fail at once, naming the process that trains here
        RunDir.new(path)  # refuse a finished run (checked under the lock)

    try:
        if not created:
            d.on_main(take)
        data = _load_data_ranks(d, config, progress)
        torch.manual_seed(config.train.seed)
        random.seed(config.train.seed)
        pair, model = build_model(config, data.info)
        if d.rank:  # the ranks' noise (dequantisation, sampling, dropout) must be independent draws
            torch.manual_seed(config.train.seed * 1_000_003 + 7919 * d.rank)
        if created:
            d.on_main(take)
        trainer = Trainer(config, model, data, run, progress=progress, meta=_meta(config, pair, data.info))
        trainer.save()  # step 0: from here on the folder is a resumable run
    except BaseException:
        if d.is_main and created and run.lock is not None and not run.checkpoint.exists():
            _remove_empty(run)
        run.release()
        raise
    return _fit(trainer, pair, run, write_config=True)


def _remove_empty(run: RunDir) -> None:
    """Remove a folder this call created and left without a checkpoint (only its lock inside)."""
    from cmmkit.training.lock import LOCK

    if {p.name for p in run.path.iterdir()} <= {LOCK}:
        run.release()
        (run.path / LOCK).unlink(missing_ok=True)
        run.path.rmdir()


def resumed_config(path: str | Path, sets: list[str] | None = None,
                   overrides: dict[str, Any] | None = None) -> RunConfig:
    """The config :func:`resume` would continue ``path`` with (``--print-config --resume``); trains nothing."""
    run = RunDir.open(path)
    _, _, meta = run.load_checkpoint()
    saved = _saved_config(run, meta)
    config = build_config(sets=sets, base=dump(saved), overrides=overrides)
    resume_changes(saved, config)
    return config


def resume(path: str | Path, sets: list[str] | None = None, *, progress: bool = True,
           overrides: dict[str, Any] | None = None) -> TrainedRun:
    """Continue a run where its checkpoint stopped. ``sets`` (``--set`` strings) and ``overrides``
    (typed values, e.g. ``{"train": {"epochs": 40}}``) may change what
    :data:`cmmkit.config_changes.MAY_CHANGE_ON_RESUME` lists (epochs, optimizer lr/kwargs, device, ...):
    optimizer hyperparameters are written into the restored optimizers; other changes are refused."""
    d = distributed.setup()
    run = RunDir(Path(path))

    def take() -> None:
        RunDir.open(path)  # a clear error when it is no run (yet)
        run.acquire("cmmkit train --resume")

    try:
        d.on_main(take)
        weights, state, meta = run.load_checkpoint()  # every rank, after rank 0 holds the folder
        saved = _saved_config(run, meta)
        rewrite = run.check_config(dump(saved), meta.get("previous_config"))
        config = build_config(sets=sets, base=dump(saved), overrides=overrides)
        changes = resume_changes(saved, config)
        _refuse_nonfinite(weights, run.checkpoint, "resume")
        pair, model = _build_checked(config, meta.get("data_info", {}), weights, run.checkpoint)
        data = _load_data_ranks(d, config, progress)
        trainer = Trainer(config, model, data, run, progress=progress,
                          meta=_meta(config, pair, meta.get("data_info", {})))
        notes = trainer.restore(state, meta)
        if d.is_main and (jump := schedule_jump(saved.train, config.train, meta, trainer.lr_factor())):
            log.warning("resume: %s", jump)
        for line in ([f"resume: {key} {old!r} -> {new!r}" for key, old, new in changes]
                     + [f"resume: optimizer {n} (written into the restored optimizer)" for n in notes]):
            if d.is_main:
                log.info("%s", line)
        if changes:
            trainer.meta["previous_config"] = dump(saved)
            trainer.save()  # the changed config is the checkpoint's before config.yaml shows it
        elif rewrite and d.is_main:
            log.info("resume: %s was missing or stale; rewritten from the checkpoint", run.config_file)
    except BaseException:
        run.release()
        raise
    return _fit(trainer, pair, run, write_config=bool(changes) or rewrite)


def _saved_config(run: RunDir, meta: dict[str, Any]) -> RunConfig:
    try:
        return validate(meta["config"])
    except KeyError:
        raise CheckpointError(f"{run.checkpoint}: no config in the checkpoint metadata") from None
    except CmmkitError as exc:
        raise CheckpointError(f"{run.checkpoint}: its saved config no longer validates: {exc}") from None


def _fit(trainer: Trainer, pair: Pair, run: RunDir, write_config: bool) -> TrainedRun:
    """Write config.yaml (after the checkpoint holds the config it shows) and train; the lock is
    released at the end."""
    main = trainer.dist.is_main
    try:
        if write_config:
            trainer.dist.on_main(lambda: run.write_config(dump(trainer.config)))
        trainer.meta.pop("previous_config", None)
        if main:
            _announce(trainer, run)
        trainer.fit()
    finally:
        run.release()
    model = trainer.model
    return TrainedRun(run.path, trainer.config, pair, model.eval(), trainer.meta | {"epoch": trainer.epoch})


def _announce(trainer: Trainer, run: RunDir) -> None:
    c, sizes = trainer.config, {k: len(v) for k, v in trainer.data.splits.items()}
    params = sum(p.numel() for p in trainer.model.parameters())
    every = c.train.checkpoint_every_minutes
    log.info(f"Training {c.model.name} ({params / 1e6:.2f}M parameters) on {c.pair.name} "
          f"({', '.join(f'{k} {v}' for k, v in sizes.items())}) on {trainer.device}, "
          f"epoch {trainer.epoch + 1} to {c.train.epochs}, into {run.path} (checkpoints at epoch ends"
          f"{f' and every {every:g} min' if every else ''}; Ctrl-C or SIGTERM saves and stops)")


def _refuse_nonfinite(weights: dict[str, torch.Tensor], source: Path, action: str) -> None:
    bad = nonfinite(weights)
    if bad:
        raise CheckpointError(f"{source}: the saved weights hold NaN or infinite values ({', '.join(bad[:3])}"
                              f"{', ...' if len(bad) > 3 else ''}): the run diverged, so it cannot {action}. "
                              "Retrain with a lower train.optimizer.lr.")


def _build_checked(config: RunConfig, info: dict[str, Any], weights: dict[str, torch.Tensor],
                   source: Path) -> tuple[Pair, ConditionalModel]:
    """Build the model for saved weights, first without memory (on the ``meta`` device) to check
    that the sizes in the checkpoint's metadata fit the saved tensors' shapes, so a damaged or
    crafted config (``latent_dim: 2**34``) fails clearly instead of allocating terabytes."""
    try:
        with torch.device("meta"):
            _, shell = build_model(config, info)
    except CmmkitError:
        raise
    except Exception:  # a plugin model that cannot be built on the meta device: the real build checks
        shell = None
    if shell is not None:
        reason = getattr(shell, "incompatible_weights", lambda _: None)(weights)  # a model knowing an old layout
        if reason:
            raise CheckpointError(f"{source}: {reason}")
        _check_fit(shell.state_dict(), weights, source)
    pair, model = build_model(config, info)
    _load_weights(model, weights, source)
    return pair, model


def _check_fit(own: dict[str, torch.Tensor], weights: dict[str, torch.Tensor], source: Path) -> None:
    missing, unexpected = set(own) - set(weights), set(weights) - set(own)
    wrong = [k for k in sorted(set(own) & set(weights)) if own[k].shape != weights[k].shape]
    if missing or unexpected or wrong:
        detail = (f"missing {sorted(missing)[:3]}" if missing else f"unexpected {sorted(unexpected)[:3]}"
                  if unexpected else f"shape of {wrong[0]}: {tuple(weights[wrong[0]].shape)} saved, "
                  f"{tuple(own[wrong[0]].shape)} expected")
        raise CheckpointError(f"{source}: weights do not fit the model its config describes ({detail}); "
                              "was it written by another cmmkit or plugin version, or was its metadata changed?")


def _load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], source: Path) -> None:
    _check_fit(model.state_dict(), weights, source)
    model.load_state_dict(weights)


def load_run(path: str | Path, device: str = "cpu", decode: list[str] | None = None) -> TrainedRun:
    """Load a run folder written by ``cmmkit train`` (never unpickles anything). Refuses weights
    that are not finite, a config.yaml edited to differ from the checkpoint, and metadata whose
    sizes do not fit the saved tensors (checked before any module is allocated). ``decode``
    (``["x.beam_size=6"]``) changes decoding-only options for this load (see
    :func:`cmmkit.config_changes.with_decode_settings`); nothing is written."""
    run = RunDir.open(path)
    weights, _, meta = run.load_checkpoint()
    config = _saved_config(run, meta)
    run.check_config(dump(config), meta.get("previous_config"))
    if decode:
        config = with_decode_settings(config, decode)
    _refuse_nonfinite(weights, run.checkpoint, "generate or be evaluated")
    pair, model = _build_checked(config, meta.get("data_info", {}), weights, run.checkpoint)
    model.to(pick_device(device)).eval()
    return TrainedRun(run.path, config, pair, model, meta)


def load_judge(path: str | Path, run: TrainedRun) -> TrainedRun:
    """The ``--judge`` run for ``run``, on its device and in eval mode: it must be a run of the judge
    model ``run``'s pair declares (:attr:`cmmkit.pair.Pair.judge_model`)."""
    expected = run.pair.judge_model
    if expected is None:
        raise ConfigError(f"--judge {path}: pair {run.pair.name} declares no judge model")
    judge = load_run(path, device=str(run.device))
    if judge.model.name != expected:
        article = "an" if expected[0] in "aeiou" else "a"
        raise CheckpointError(f"--judge {path}: a {judge.model.name} run, expected {article} {expected} run "
                              f"(train one with `cmmkit train-judge --pair {run.pair.name}`)")
    judge.model.eval()
    return judge
