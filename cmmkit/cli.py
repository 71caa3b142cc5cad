"""The ``cmmkit`` command line: a thin layer over the library (see ``cmmkit --help``)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from cmmkit.errors import CmmkitError


def _train(args: argparse.Namespace) -> int:
    from cmmkit.config import build_config
    from cmmkit.runs import resume, train

    sets = list(args.set or [])
    if args.data_dir:
        sets.append(f"data.data_dir={args.data_dir}")
    if args.epochs is not None:
        sets.append(f"train.epochs={args.epochs}")
    if args.device:
        sets.append(f"train.device={args.device}")
    model = getattr(args, "model", None)
    if args.resume:
        if args.pair or args.preset or args.config or model:
            raise CmmkitError("--resume continues a run with its saved config; use --set to change it "
                              "(not --pair/--model/--preset/--config)")
        run = resume(args.resume, sets, progress=not args.no_progress)
    else:
        config = build_config(args.pair, args.preset, args.config, sets, model=model)
        run = train(config, args.out, progress=not args.no_progress)
    print(f"Run saved in {run.path} (epoch {run.meta.get('epoch')}); "
          f"preview images in {run.path / 'samples'}")
    return 0


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


def make_parser() -> argparse.ArgumentParser:
    from cmmkit import __version__

    parser = argparse.ArgumentParser(prog="cmmkit", description="Conditional multimodal generation (CMMA).")
    parser.add_argument("--version", action="version", version=f"cmmkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on a pair (or --resume a run)")
    _train_options(t)
    t.add_argument("--model", help="cmma (default), cvae, vae, cgan or any plugin's model")
    t.set_defaults(func=_train)

    j = sub.add_parser("train-judge", help="train the attribute classifier used for attribute fidelity")
    _train_options(j)
    j.set_defaults(func=_train, model="attribute_judge")

    p = sub.add_parser("pairs", help="list installed pairs with their plugin, version and modalities")
    p.set_defaults(func=_pairs)
    return parser


def _train_options(t: argparse.ArgumentParser) -> None:
    t.add_argument("--pair", help="pair to train on (see `cmmkit pairs`)")
    t.add_argument("--preset", help="named preset of the pair: default (CPU), paper (GPU), tiny")
    t.add_argument("--config", help="YAML/JSON config file (sections pair, model, data, train)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. train.lr=0.05 (repeatable)")
    t.add_argument("--out", help="run folder to create (default runs/<pair>-<model>-<time>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    t.add_argument("--data-dir", help="folder holding this pair's data files (overrides $CMMKIT_DATA)")
    t.add_argument("--epochs", type=int, help="shortcut for --set train.epochs=N")
    t.add_argument("--device", help="shortcut for --set train.device=... (auto, cpu, cuda)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except CmmkitError as exc:
        print(f"cmmkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
