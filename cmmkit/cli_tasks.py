"""The paper's tasks on a trained run as commands: ``generate``, ``edit``, ``infer`` and ``figure``.

Flags of one kind of condition and commands of one pair come from plugins through the
``register_commands`` hook (:mod:`cmmkit.cli_plugins`).

Each handler is a thin layer over a library call (:meth:`cmmkit.runs.TrainedRun.generate`,
``.edit``, ``.infer`` and :mod:`cmmkit.figures`), so every command is also one call in Python.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from cmmkit.cli_plugins import CONDITION_PARTS, GENERATE_KWARGS
from cmmkit.data.download import atomic_write_bytes
from cmmkit.errors import ConfigError

log = logging.getLogger(__name__)


def parse_pairs(specs: list[str] | None, flag: str) -> dict[str, str]:
    """``["a=1", "b c=0.5"]`` -> ``{"a": "1", "b c": "0.5"}`` (values are checked by the modality,
    which knows their names, type and range)."""
    out: dict[str, str] = {}
    for spec in specs or []:
        key, sep, value = spec.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {spec!r}: expected NAME=VALUE, a name of the run's condition and its value")
        out[key.strip()] = value.strip()
    return out


def conditions(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One condition per ``--text`` (or a single one), each with the values of the condition flags
    that plugins add (:meth:`cmmkit.cli_plugins.CommandLine.condition`)."""
    base: dict[str, Any] = {}
    for flag, key, value in getattr(args, CONDITION_PARTS, None) or []:
        if key is None:
            base.update(parse_pairs([value], flag))
        else:
            base[key] = value
    texts = list(args.text or [])
    if getattr(args, "input", None):
        try:
            texts += [line.strip() for line in Path(args.input).read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--input {args.input}: cannot read it as UTF-8 text ({exc})") from None
    if not texts and not base:
        flags = [*(getattr(args, "condition_flags", None) or []), "--text TEXT", "--input FILE"]
        raise ConfigError(f"nothing to condition on: give {', '.join(flags[:-1])} or {flags[-1]}")
    return [{**base, "text": t} for t in texts] if texts else [base]


def _label(cond: dict[str, Any]) -> str:
    """``TEXT, key=value, ...``: the text first, then the other values."""
    parts = [str(cond["text"])] if "text" in cond else []
    return ", ".join(parts + [f"{k}={v}" for k, v in cond.items() if k != "text"]) or "base"


def _load(path: str, device: str, decode: list[str] | None = None) -> Any:
    from cmmkit.runs import load_run

    return load_run(path, device=device, decode=decode)


def _generate(args: argparse.Namespace) -> int:
    import torch

    run = _load(args.run, args.device, args.decode)
    conds = conditions(args)
    if args.n < 1:
        raise ConfigError(f"--n {args.n}: expected at least 1 sample per condition")
    if args.noise < 0:
        raise ConfigError(f"--noise {args.noise}: expected a scale >= 0 (0: the means, as in §4.5)")
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    kwargs = dict(getattr(args, GENERATE_KWARGS, None) or {})  # plugins' generate options (e.g. --base)
    if args.output_noise is not None and args.output_noise < 0:
        raise ConfigError(f"--output-noise {args.output_noise}: expected a scale >= 0")
    if args.n > 1 and args.noise == 0 and not args.output_noise:
        log.warning("--n %d at --noise 0: the samples of a condition are all its mean, so they are the same; "
                    "pass --noise 1 (and --output-noise 0 for clean means) for different ones", args.n)
    outputs = run.generate(conds, noise_scale=args.noise, n=args.n, output_noise=args.output_noise,
                           condition_options=kwargs)
    written = run.x.save_outputs(outputs, Path(args.output), columns=args.n, labels=[_label(c) for c in conds])
    _done(written, start)
    return 0


def _examples(args: argparse.Namespace) -> list[Path]:
    paths = [Path(p) for p in args.image]
    for p in paths:
        if not p.is_file():
            raise ConfigError(f"--image {p}: no such file")
    return paths


def _edit(args: argparse.Namespace) -> int:
    run = _load(args.run, args.device)
    run.check_can_edit()
    changes = parse_pairs(args.set, "--set")
    if not changes:
        raise ConfigError("--set NAME=VALUE: give at least one change of the condition")
    examples = _examples(args)
    helper = _load(args.infer_with, args.device) if args.infer_with else None
    start = time.perf_counter()
    x = run.prepare_x(examples)  # files read and converted once, for both edits
    known = [None if args.infer else run.pair.lookup_condition(run.config.pair, run.config.data.data_dir, p)
             for p in examples]
    if None in known:
        log.info("%d image(s) have no known condition; inferred from the image by %s", known.count(None),
                 (helper or run).path)
    recon, known = run.edit(x, {}, original=known, infer_with=helper)
    edited, _ = run.edit(x, changes, original=known)
    inputs = run.x.to_user(x)  # shown as the model saw them
    change_text = ", ".join(f"{k}={v}" for k, v in changes.items())
    cells = [item for triple in zip(inputs, recon, edited) for item in triple]
    names = [p.name if len(examples) > 1 else f"{p.name}: {run.model.name.upper()} ({run.path})" for p in examples]
    written = run.x.save_outputs(cells, Path(args.output), columns=3, labels=names,
                                 column_labels=["input", "unchanged", change_text])
    _done(written, start)
    return 0


def _infer(args: argparse.Namespace) -> int:
    run = _load(args.run, args.device)
    examples = _examples(args)
    result = {str(p): values for p, values in zip(examples, run.infer(examples))}
    text = json.dumps(result, indent=2)
    if args.output:
        try:
            atomic_write_bytes(Path(args.output), (text + "\n").encode("utf-8"))
        except OSError as exc:
            raise ConfigError(f"-o {args.output}: cannot write ({exc.strerror or exc})") from None
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def _figure(args: argparse.Namespace) -> int:
    from cmmkit.figures import make_figure

    start = time.perf_counter()
    written = make_figure(args.name, args.runs, Path(args.output), device=args.device, examples=args.examples,
                          count=args.count, infer_with=args.infer_with, data_dir=args.data_dir)
    _done(written, start)
    return 0


def _done(written: list[Path], start: float) -> None:
    for path in written:
        print(f"wrote {path}")
    log.info("(%.1f s)", time.perf_counter() - start)


def add_commands(sub: Any) -> dict[str, argparse.ArgumentParser]:
    """Add generate, edit, infer and figure to ``sub``; returns their parsers by name (plugins add
    their own condition flags and commands through the ``register_commands`` hook)."""
    g = sub.add_parser("generate", help="generate x from a condition y (flags of the installed pairs below)")
    g.add_argument("run", help="run folder written by `cmmkit train`")
    g.add_argument("--text", action="append", help="conditioning text (repeatable: one output row each)")
    g.add_argument("--input", help="a text file: one condition text per line")
    g.add_argument("--n", type=int, default=1, help="samples per condition (default 1)")
    g.add_argument("--noise", type=float, default=0.0, help="noise scale; 0 (default) uses the means as in §4.5")
    g.add_argument("--output-noise", type=float,
                   help="scale of the decoder's own noise (pixel noise, token sampling); default: --noise. "
                        "--noise 1 --output-noise 0 varies z but shows clean means")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--decode", nargs="+", metavar="SIDE.NAME=VALUE",
                   help="decoding-only settings, e.g. x.beam_size=6 x.length_penalty=1.0 (the run is not changed)")
    g.add_argument("-o", "--output", required=True, help="output file (the run's x modality says which kinds: .png, .wav, .txt, ...)")
    g.add_argument("--device", default="cpu")
    g.set_defaults(func=_generate)

    e = sub.add_parser("edit", help="change an existing x by changing its condition (§4.5, Figs. 8 and 10)")
    e.add_argument("run", help="a cmma or cvae run folder")
    e.add_argument("--image", action="append", required=True, help="input file(s): PNG/JPG/PPM, any size")
    e.add_argument("--set", action="append", metavar="NAME=VALUE", help="the change of the condition (repeatable)")
    e.add_argument("--infer", action="store_true",
                   help="infer the original condition from the image even when the pair knows it")
    e.add_argument("--infer-with", metavar="RUN",
                   help="a cmma run with model.posterior=x that infers missing conditions (default: RUN itself)")
    e.add_argument("-o", "--output", required=True, help="PNG: per image, its reconstruction and its edit")
    e.add_argument("--device", default="cpu")
    e.set_defaults(func=_edit)

    i = sub.add_parser("infer", help="infer the condition y of x with a posterior=x CMMA")
    i.add_argument("run")
    i.add_argument("--image", action="append", required=True)
    i.add_argument("-o", "--output", help="write JSON here instead of printing it")
    i.add_argument("--device", default="cpu")
    i.set_defaults(func=_infer)

    f = sub.add_parser("figure", help="the paper's figures as PNGs: fig4 (2-d latents) and those the run's pair declares")
    f.add_argument("name", help="fig4, or a figure the run's pair declares (an unknown name lists them)")
    f.add_argument("runs", nargs="+", help="run folder(s); one labelled panel per run")
    f.add_argument("-o", "--output", required=True, help="PNG to write")
    f.add_argument("--examples", type=int, nargs="+", help="which examples (indices) to show, where the figure picks some")
    f.add_argument("--count", type=int, default=6, help="how many individuals / examples")
    f.add_argument("--infer-with", metavar="RUN", help="a posterior=x cmma run that infers missing conditions")
    f.add_argument("--data-dir", help="the pair's data folder (else the run's config / $CMMKIT_DATA)")
    f.add_argument("--device", default="cpu")
    f.set_defaults(func=_figure)
    return {"generate": g, "edit": e, "infer": i, "figure": f}
