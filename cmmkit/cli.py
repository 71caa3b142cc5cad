"""The ``cmmkit`` command line: a thin layer over the library (see ``cmmkit --help``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cmmkit.data.download import atomic_write_bytes
from cmmkit.errors import CmmkitError

log = logging.getLogger("cmmkit.cli")  # not __name__, which is "__main__" under `python -m cmmkit.cli`

TRAIN_EXAMPLES = """\
examples:
  cmmkit pairs                                   # the installed pairs (PAIR below)
  cmmkit train --pair PAIR --preset tiny --epochs 2
  cmmkit train --pair PAIR --model cvae --set train.optimizer.lr=0.05
  cmmkit train --pair PAIR --set model.posterior=x --set train.batch_size=32 --data-dir ~/data/PAIR
  cmmkit train --pair PAIR --preset paper --device cuda
  cmmkit train --pair PAIR --print-config
  cmmkit train --resume runs/my-run --epochs 40
"""


def _train(args: argparse.Namespace) -> int:
    """Train or resume. Exit codes: 0 done, 2 bad input, 3 diverged (non-finite loss/weights; the
    last good checkpoint is kept), 130/143 stopped by SIGINT/SIGTERM after saving a checkpoint."""
    from cmmkit.training.distributed import current, teardown
    from cmmkit.training.signals import TrainingInterrupted
    from cmmkit.training.trainer import TrainingDiverged

    together = False  # every rank reached the same end (done, stopped or diverged at one step)
    try:
        code = _train_or_resume(args)
        together = True
        return code
    except TrainingInterrupted as exc:
        together = True
        if current().is_main:
            log.error("\n%s", exc.message)
        return exc.exit_code
    except TrainingDiverged as exc:
        together = True
        if current().is_main:
            log.error("cmmkit: error: %s", exc)
        return 3
    finally:
        teardown(wait=together)  # under torchrun: leave the process group cleanly


def typed_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The command's typed options as a nested config dict (merged after ``--set``, never as strings)."""
    out: dict[str, Any] = {}
    if args.data_dir is not None:
        out.setdefault("data", {})["data_dir"] = Path(args.data_dir)
    if args.epochs is not None:
        out.setdefault("train", {})["epochs"] = args.epochs
    if args.device is not None:
        out.setdefault("train", {})["device"] = args.device
    return out


def _train_or_resume(args: argparse.Namespace) -> int:
    from cmmkit.config import build_config, dump
    from cmmkit.runs import resume, resumed_config, train

    sets, overrides = list(args.set or []), typed_overrides(args)
    model = _judge_model(args.pair) if getattr(args, "judge", False) else getattr(args, "model", None)
    if args.resume:
        if args.pair or args.preset or args.config or model:
            raise CmmkitError("--resume continues a run with its saved config; use --set to change it "
                              "(not --pair/--model/--preset/--config)")
        if args.print_config:
            return _print_config(dump(resumed_config(args.resume, sets, overrides)))
        run = resume(args.resume, sets, progress=not args.no_progress, overrides=overrides)
    else:
        config = build_config(args.pair, args.preset, args.config, sets, model=model, overrides=overrides)
        if args.print_config:
            return _print_config(dump(config))
        run = train(config, args.out, progress=not args.no_progress)
    from cmmkit.training.distributed import current

    if current().is_main:
        print(f"Run saved in {run.path} (epoch {run.meta.get('epoch')}); "
              f"previews in {run.path / 'samples'}")
    return 0


def _print_config(config: dict[str, Any]) -> int:
    """``--print-config``: the effective config as YAML (a valid ``--config`` file), nothing trained."""
    import yaml

    print(yaml.safe_dump(config, sort_keys=False), end="")
    return 0


def _judge_model(pair_name: str | None) -> str | None:
    """The judge model the pair declares (``Pair.judge_model``); the config check reports a
    missing ``--pair``."""
    if not pair_name:
        return None
    from cmmkit.registry import get_registry

    pair = get_registry().pair(pair_name)
    if pair.judge_model is None:
        raise CmmkitError(f"pair {pair_name!r} declares no judge model to train")
    return pair.judge_model


def _pairs(args: argparse.Namespace) -> int:
    from cmmkit.plugins import plugin_version
    from cmmkit.registry import get_registry

    reg = get_registry()
    rows = [("pair", "plugin", "version", "generates (x)", "from (y)", "description")]
    for name in reg.pairs.names():
        entry = reg.pairs.entries[name]
        dist, version = plugin_version(entry.plugin)
        p = entry.obj
        rows.append((name, f"{entry.plugin} ({dist})", version, p.x_modality, p.y_modality, p.description))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])
    if len(rows) == 1:
        print("no pairs installed")
    return 0


def _count_or_all(text: str) -> int | None:
    """A positive count, or ``all`` (None: no cap)."""
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number or 'all', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number or 'all', got {value}")
    return value


def _evaluate(args: argparse.Namespace) -> int:
    from cmmkit.evaluation.evaluate import EVAL_FILE, EvalOptions, evaluate_run
    from cmmkit.report import report_table

    opts = EvalOptions(split=args.split, k=args.k, is_examples=args.is_examples, parzen_samples=args.parzen_samples,
                       parzen=not args.no_parzen, parzen_val_examples=args.parzen_val_examples,
                       parzen_examples=args.parzen_examples, only=args.only, decode=args.decode, judge=args.judge,
                       seeds=args.seeds, max_examples=args.max_examples, data_dir=args.data_dir, device=args.device)
    result = evaluate_run(args.run, opts, progress=not args.no_progress)
    print(report_table([result])[0])
    print(f"\nwrote {Path(args.run) / EVAL_FILE}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from cmmkit.report import load_eval, report_table

    markdown, csv_text = report_table([load_eval(Path(r)) for r in args.runs])
    print(markdown)
    for path, text in ((args.output, markdown), (args.csv, csv_text)):
        if path:
            try:
                atomic_write_bytes(Path(path), text.encode("utf-8"))
            except OSError as exc:
                raise CmmkitError(f"cannot write {path}: {exc.strerror or exc}") from None
    return 0


def make_parser() -> argparse.ArgumentParser:
    from cmmkit import __version__

    parser = argparse.ArgumentParser(prog="cmmkit", description="Conditional multimodal generation (CMMA).")
    parser.add_argument("--version", action="version", version=f"cmmkit {__version__}")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("-v", "--verbose", action="count", default=0, help="also show debug messages")
    noise.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr, no progress "
                                                                    "bars (results still go to stdout); TQDM_DISABLE=1 hides bars alone")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on a pair (or --resume a run)", epilog=TRAIN_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _train_options(t)
    from cmmkit.config import DEFAULT_MODEL

    t.add_argument("--model", help=f"{DEFAULT_MODEL} (default), cvae, vae, cgan or any plugin's model")
    t.set_defaults(func=_train)

    j = sub.add_parser("train-judge", help="train the pair's judge (a classifier of y from x) used by `cmmkit evaluate --judge`")
    _train_options(j)
    j.set_defaults(func=_train, judge=True)

    p = sub.add_parser("pairs", help="list installed pairs with their plugin, version and modalities")
    p.set_defaults(func=_pairs)

    e = sub.add_parser("evaluate", help="test bound, importance-sampled and Parzen log p(x|y), and the measures the run's "
                                        "pair declares")
    e.add_argument("run", help="run folder written by `cmmkit train`")
    e.add_argument("--split", default="test", help="split to evaluate (default test)")
    e.add_argument("--k", type=int, default=1000, help="importance samples per example (default 1000)")
    e.add_argument("--is-examples", type=_count_or_all, default=100, metavar="N|all",
                   help="importance-sample the first N examples (default 100; 'all': every one; K decoder passes each)")
    e.add_argument("--parzen-examples", type=_count_or_all, default=500, metavar="N|all",
                   help="Parzen on the first N examples (default 500; 'all': every one; S decoder passes each, per seed)")
    e.add_argument("--parzen-samples", type=int, default=100, help="samples from p(x|y) per example for Parzen")
    e.add_argument("--parzen-val-examples", type=int, default=200, help="validation examples for choosing sigma")
    e.add_argument("--no-parzen", action="store_true", help="skip the Parzen-window estimate")
    e.add_argument("--decode", nargs="+", metavar="SIDE.NAME=VALUE",
                   help="decoding-only settings for this evaluation, e.g. x.beam_size=6 x.length_penalty=1.0 "
                        "(the run is not changed; other settings are refused)")
    e.add_argument("--only", nargs="+", metavar="MEASURE",
                   help="compute only these measures (bound, importance_sampling, parzen, or the pair's, e.g. bleu); "
                        "the others are null in eval.json")
    e.add_argument("--judge", help="judge run folder (from `cmmkit train-judge`) for the pair's judged measure")
    e.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds; mean ± std over them (e.g. 0 1 2)")
    e.add_argument("--max-examples", type=int, help="evaluate the first N examples of the split only")
    e.add_argument("--data-dir", help="folder holding the pair's data (else the run's config / $CMMKIT_DATA)")
    e.add_argument("--device", default="auto")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=_evaluate)

    from cmmkit.cli_plugins import extend
    from cmmkit.cli_tasks import add_commands

    commands = {"train": t, "train-judge": j, "pairs": p, "evaluate": e, **add_commands(sub)}

    from cmmkit.demo.serve import add_command as add_demo_command

    add_demo_command(sub)

    r = sub.add_parser("report", help="runs side by side in the shape of the paper's Table 2")
    r.add_argument("runs", nargs="+", help="evaluated run folders")
    r.add_argument("-o", "--output", help="also write the markdown table here")
    r.add_argument("--csv", help="also write a CSV table here")
    r.set_defaults(func=_report)
    extend(sub, {**commands, "report": r})  # plugins' commands and flags (the register_commands hook)
    return parser


def _train_options(t: argparse.ArgumentParser) -> None:
    t.add_argument("--pair", help="pair to train on (see `cmmkit pairs`)")
    t.add_argument("--preset", help="named preset of the pair: default (CPU), paper (GPU), tiny")
    t.add_argument("--config", help="YAML/JSON config file (sections pair, model, data, train)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. train.optimizer.lr=0.05 (repeatable; "
                   "values are YAML)")
    t.add_argument("--out", help="run folder to create (default runs/<pair>-<model>-<time>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    t.add_argument("--data-dir", help="folder holding this pair's data files (overrides $CMMKIT_DATA)")
    t.add_argument("--epochs", type=int, help="shortcut for --set train.epochs=N")
    t.add_argument("--device", help="shortcut for --set train.device=... (auto, cpu, cuda)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("--print-config", action="store_true", help="print the effective config as YAML and exit")


def main(argv: Sequence[str] | None = None) -> int:
    from cmmkit.logs import configure

    args = make_parser().parse_args(argv)
    previous = configure(-1 if args.quiet else args.verbose)
    try:
        return args.func(args)
    except CmmkitError as exc:
        log.error("cmmkit: error: %s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        logging.getLogger("cmmkit").setLevel(previous)  # an in-process caller keeps its own level


if __name__ == "__main__":
    sys.exit(main())
