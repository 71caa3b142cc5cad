"""What the LFW plugin adds to the ``cmmkit`` command line (the ``register_commands`` hook):
``--attr NAME=VALUE`` and ``--base`` for ``cmmkit generate``, ``--faces`` for ``cmmkit figure``,
and the ``cmmkit evaluate-edits`` command (:mod:`cmmkit_lfw.edits`)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def register(cli: Any) -> None:
    """Called by the plugin's ``register_commands`` hook with a :class:`cmmkit.api.CommandLine`."""
    cli.condition("--attr", help="a named attribute of the condition, e.g. --attr Male=1 --attr Eyeglasses=1 "
                                 "(repeatable)")
    cli.generate_option("--base", keyword="base", choices=["conditional", "mean"],
                        help="named attributes: fill unspecified ones with their conditional mean given the "
                             "specified ones (default) or with the training mean")
    cli.option("figure", "--faces", dest="examples", type=int, nargs="+",
               help="fig8/fig10: which faces (indices) to edit (the same as --examples)")
    v = cli.command("evaluate-edits", help="edit fidelity per attribute (with a judge) and attribute "
                                            "inference accuracy, written to RUN/edit_eval.json")
    v.add_argument("run", help="a cmma or cvae run folder")
    v.add_argument("--judge", help="attribute_judge run (from `cmmkit train-judge`) for edit fidelity")
    v.add_argument("--infer-with", metavar="RUN", help="posterior=x cmma run whose inferred attributes to score")
    v.add_argument("--split", default="test")
    v.add_argument("--examples", type=int, default=200, help="faces to edit / infer (default 200)")
    v.add_argument("--attributes", nargs="+", help="attributes to flip (default all)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--data-dir", help="the pair's data folder (else the run's config / $CMMKIT_DATA)")
    v.add_argument("--device", default="auto")
    v.add_argument("--no-progress", action="store_true")
    v.set_defaults(func=evaluate_edits_command)


def evaluate_edits_command(args: argparse.Namespace) -> int:
    from cmmkit_lfw.edits import EDIT_FILE, EditEvalOptions, edit_table, evaluate_edits

    opts = EditEvalOptions(judge=args.judge, infer_with=args.infer_with, split=args.split, examples=args.examples,
                           attributes=args.attributes, seed=args.seed, data_dir=args.data_dir, device=args.device)
    start = time.perf_counter()
    result = evaluate_edits(args.run, opts, progress=not args.no_progress)
    print(edit_table(result))
    print(f"wrote {Path(args.run) / EDIT_FILE}")
    log.info("(%.1f s)", time.perf_counter() - start)
    return 0
