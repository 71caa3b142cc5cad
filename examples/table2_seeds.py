"""Table 2 over training seeds: mean ± std (over the runs of each model) of what `cmmkit evaluate`
and `cmmkit evaluate-edits` wrote into each run folder.

    python examples/table2_seeds.py runs/t2/cmma-s0 runs/t2/cmma-s1 runs/t2/cvae-s0 ... [--csv FILE]

Per run it reads ``eval_test.json`` (bound, importance sampling, attribute fidelity: a copy of
``eval.json`` from the full-test evaluation), ``eval_parzen500.json`` (the Parzen evaluation, which may
cover fewer examples) and ``edit_eval.json``; any of them may be missing (the cell is then "—"), and
the number of runs behind each cell is printed. The spread is the sample standard deviation over
*training* seeds (ddof 1); with one run it is left out.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path
from typing import Any

COLUMNS = {  # column -> (file, path of keys into its JSON)
    "bound_nats": ("eval_test.json", ("bound", "nats")),
    "is_nats": ("eval_test.json", ("importance_sampling", "nats")),
    "attr_mean_auc": ("eval_test.json", ("attribute_fidelity", "mean_auc")),
    "attr_real_mean_auc": ("eval_test.json", ("attribute_fidelity", "real_mean_auc")),
    "parzen_nats": ("eval_parzen500.json", ("parzen", "nats")),
    "edit_logit_change": ("edit_eval.json", ("edit_fidelity", "mean_logit_change")),
    "edit_reached_rate": ("edit_eval.json", ("edit_fidelity", "mean_reached_rate")),
}


def _read(run: Path, name: str, keys: tuple[str, ...]) -> float | None:
    path = run / name
    if not path.is_file():
        return None
    value: Any = json.loads(path.read_text())
    for key in keys:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return float(value)


def _model(run: Path) -> str:
    for name in ("eval_test.json", "eval_parzen500.json", "edit_eval.json"):
        if (run / name).is_file():
            return str(json.loads((run / name).read_text())["model"])
    raise SystemExit(f"{run}: no evaluation file (run cmmkit evaluate first)")


def aggregate(runs: list[Path]) -> dict[str, dict[str, tuple[float, float | None, int]]]:
    """{model: {column: (mean, std or None, runs)}} over the given run folders."""
    values: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        cols = values.setdefault(_model(run), {})
        for column, (name, keys) in COLUMNS.items():
            v = _read(run, name, keys)
            if v is not None:
                cols.setdefault(column, []).append(v)
    return {model: {c: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else None, len(v))
                    for c, v in cols.items()} for model, cols in values.items()}


def _cell(stat: tuple[float, float | None, int] | None, digits: int) -> str:
    if stat is None:
        return "—"
    mean, std, n = stat
    text = f"{mean:,.{digits}f}" + (f" ± {std:,.{digits}f}" if std is not None else "")
    return f"{text} (n={n})"


def markdown(table: dict[str, dict[str, tuple[float, float | None, int]]]) -> str:
    heads = ["Model", "Bound (nats)", "IS log p(x|y) (nats)", "Parzen (nats)", "Attribute AUC",
             "Edit logit change", "Edit reaches asked state"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for model, cols in table.items():
        cells = [_cell(cols.get("bound_nats"), 0), _cell(cols.get("is_nats"), 0), _cell(cols.get("parzen_nats"), 0),
                 _cell(cols.get("attr_mean_auc"), 3), _cell(cols.get("edit_logit_change"), 2),
                 _cell(cols.get("edit_reached_rate"), 3)]
        lines.append("| " + " | ".join([model, *cells]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--csv", type=Path, help="also write model, column, mean, std, runs rows here")
    args = ap.parse_args(argv)
    table = aggregate(args.runs)
    print(markdown(table))
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["model", "column", "mean", "std_over_training_seeds", "runs"])
            for model, cols in table.items():
                for column, (mean, std, n) in cols.items():
                    w.writerow([model, column, mean, "" if std is None else std, n])


if __name__ == "__main__":
    main(sys.argv[1:])
