"""``cmmkit report``: evaluated runs side by side in the shape of the paper's Table 2.

Reads the ``eval.json`` that ``cmmkit evaluate RUN`` writes and renders one markdown row per run
(Parzen log-likelihood, variational lower bound, importance-sampled log p(x|y), bits/dim), and a
CSV of the same numbers unformatted for plotting. Numbers from different splits are not
comparable, so the markdown says so when they are mixed.

A pair's own measures (:meth:`cmmkit.pair.Pair.evaluations`) appear in two ways: a measure whose
result has a ``"summary"`` (label -> number) gets one column per label in a table of their own;
a measure the pair describes with a :class:`ReportSection` (:meth:`cmmkit.pair.Pair.report_sections`)
adds its own columns to the main table, its own tables, CSV columns and warnings.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmmkit.errors import CheckpointError, CmmkitError, ConfigError
from cmmkit.evaluation import EVAL_FILE

REQUIRED_KEYS = ("model", "split", "run")
BLOCKS = ("bound", "importance_sampling", "parzen")
DASH = "—"


@dataclass
class Column:
    """A column a :class:`ReportSection` adds to the main table: ``cell`` turns one run's eval.json
    into the cell's text; the column is left out when no run has ``needs`` (an eval.json key)."""

    header: str
    cell: Callable[[dict[str, Any]], str]
    needs: str | None = None


class ReportSection:
    """How ``cmmkit report`` shows one measure a pair declares (its eval.json key is ``measure``).
    Every method receives the evals of all the reported runs; the defaults add nothing."""

    measure: str = ""

    def columns(self, evals: list[dict[str, Any]]) -> list[Column]:
        """Columns appended to the main table."""
        return []

    def tables(self, evals: list[dict[str, Any]]) -> list[str]:
        """Markdown lines after the main table (e.g. a per-attribute table)."""
        return []

    def csv_columns(self, evals: list[dict[str, Any]]) -> list[tuple[str, Callable[[dict[str, Any]], Any]]]:
        """(header, value of one run's eval.json) for the CSV; values are written plain."""
        return []

    def warnings(self, evals: list[dict[str, Any]]) -> list[str]:
        """Lines above the tables (e.g. numbers from different judges are not comparable)."""
        return []


def sections(evals: list[dict[str, Any]]) -> list[ReportSection]:
    """The report sections of the pairs of ``evals`` that are installed, one per measure."""
    from cmmkit.registry import get_registry

    registry = get_registry()
    found: dict[str, ReportSection] = {}
    for name in dict.fromkeys(str(e["pair"]) for e in evals if e.get("pair")):
        try:
            pair = registry.pair(name)
        except CmmkitError:
            continue  # not installed here: its generic columns still show
        for section in pair.report_sections():
            found.setdefault(section.measure, section)
    return list(found.values())


def load_eval(run_dir: str | Path) -> dict[str, Any]:
    """The parsed ``run_dir/eval.json``; :class:`CheckpointError` naming the path if unusable."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run folder")
    path = run_dir / EVAL_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; run `cmmkit evaluate {run_dir}` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                              f"re-run `cmmkit evaluate {run_dir}`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"{path}: lacks required key(s) {', '.join(map(repr, missing))}; "
                              f"re-run `cmmkit evaluate {run_dir}`")
    for block in (*BLOCKS, *(data.get("pair_metrics") or [])):
        if not isinstance(block, str):
            raise CheckpointError(f"{path}: 'pair_metrics' must list measure names, found {block!r}")
        if data.get(block) is not None and not isinstance(data[block], dict):
            raise CheckpointError(f"{path}: {block!r} must be an object or null, got {type(data[block]).__name__}")
    return data


def number(value: Any) -> float | None:
    """A finite number, or None for missing / null / NaN / non-numeric values."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _get(ev: dict[str, Any], block: str, key: str) -> float | None:
    return number((ev.get(block) or {}).get(key))


def _fmt(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def _nats(mean: float | None, std: float | None) -> str:
    """``18,000 ± 3``: integers for large values, more decimals for small ones."""
    if mean is None:
        return DASH
    dec = 0 if abs(mean) >= 100 else 1 if abs(mean) >= 10 else 2
    text = _fmt(mean, dec)
    if std is not None and std > 0:
        text += " ± " + (_fmt(std, dec) if round(std, dec) > 0 else f"{std:.1g}")
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# the main table's columns, in :func:`_row`'s order: (header, the eval.json block it needs or None)
COLUMNS = [("Model", None), ("Run", None), ("Split", None), ("Parzen log-likelihood (nats)", "parzen"),
           ("Variational lower bound (nats)", "bound"), ("IS log p(x|y) (nats, K)", "importance_sampling"),
           ("Bound bits/dim", "bound")]


def _row(ev: dict[str, Any]) -> list[str]:
    """One cell per entry of :data:`COLUMNS`."""
    is_block = ev.get("importance_sampling") or {}
    is_text = _nats(_get(ev, "importance_sampling", "nats"), _get(ev, "importance_sampling", "nats_std"))
    if is_text != DASH and number(is_block.get("k")) is not None:
        extra = f"K={int(is_block['k']):,}"
        m, n = number(is_block.get("examples")), number(ev.get("examples"))
        if m is not None and n is not None and m < n:
            extra += f", {int(m):,} ex."
        is_text += f" ({extra})"
    bpd = _get(ev, "bound", "bits_per_dim")
    return [str(ev["model"]), str(ev["run"]), str(ev["split"]),
            _nats(_get(ev, "parzen", "nats"), _get(ev, "parzen", "nats_std")),
            _nats(_get(ev, "bound", "nats"), _get(ev, "bound", "nats_std")),
            is_text, DASH if bpd is None else f"{bpd:.3f}"]


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def _warnings(evals: list[dict[str, Any]], extra: list[ReportSection]) -> list[str]:
    out = []
    for key, what in (("split", "splits"), ("pair", "pairs")):
        values = sorted({str(e.get(key)) for e in evals if e.get(key) is not None})
        if len(values) > 1:
            out.append(f"> **Warning:** these runs were evaluated on different {what} ({', '.join(values)}); "
                       "their numbers are not comparable.")
    for section in extra:
        out += section.warnings(evals)
    return out


def _markdown(evals: list[dict[str, Any]], extra: list[ReportSection]) -> str:
    lines = _warnings(evals, extra)
    lines += [""] if lines else []
    columns = [Column(header, lambda e, i=i: _row(e)[i], block) for i, (header, block) in enumerate(COLUMNS)]
    columns += [c for section in extra for c in section.columns(evals)]
    # a measure no run has (e.g. Parzen for a translation pair) gets no column
    keep = [c for c in columns if c.needs is None or any(e.get(c.needs) for e in evals)]
    lines += markdown_table([c.header for c in keep], [[c.cell(e) for c in keep] for e in evals])
    parzen = [e["parzen"] for e in evals if _get(e, "parzen", "nats") is not None]
    if parzen:
        note = next((p["note"] for p in parzen if isinstance(p.get("note"), str) and p["note"]), None)
        if note is None:
            from cmmkit.evaluation.parzen import PARZEN_NOTE  # imports torch; only when needed

            note = PARZEN_NOTE
        lines += ["", f"*Note:* {note}"]
    lines += _pair_measures(evals, extra)
    for section in extra:
        lines += section.tables(evals)
    return "\n".join(lines) + "\n"


def _summaries(evals: list[dict[str, Any]], extra: list[ReportSection]) -> list[str]:
    """Column labels of the pair measures' summaries (e.g. BLEU, digit accuracy), in first-seen order."""
    own = {section.measure for section in extra}
    labels: list[str] = []
    for e in evals:
        for name in e.get("pair_metrics") or []:
            if name in own:
                continue  # its section shows it
            for label in ((e.get(name) or {}).get("summary") or {}):
                if label not in labels:
                    labels.append(label)
    return labels


def _summary_value(ev: dict[str, Any], label: str) -> float | None:
    for name in ev.get("pair_metrics") or []:
        value = number(((ev.get(name) or {}).get("summary") or {}).get(label))
        if value is not None:
            return value
    return None


def _pair_measures(evals: list[dict[str, Any]], extra: list[ReportSection]) -> list[str]:
    labels = _summaries(evals, extra)
    if not labels:
        return []
    rows = [[str(e["model"]), str(e["run"])] + [DASH if (v := _summary_value(e, lab)) is None else f"{v:,.4g}"
                                              for lab in labels] for e in evals]
    return ["", "Measures the pair declares:", ""] + markdown_table(["Model", "Run"] + labels, rows)


def _csv(evals: list[dict[str, Any]], extra: list[ReportSection]) -> str:
    fields = [("parzen", "nats"), ("parzen", "nats_std"), ("parzen", "sigma"), ("parzen", "samples"),
              ("bound", "nats"), ("bound", "nats_std"), ("bound", "bits_per_dim"),
              ("importance_sampling", "nats"), ("importance_sampling", "nats_std"), ("importance_sampling", "k"),
              ("importance_sampling", "examples"), ("importance_sampling", "bits_per_dim")]
    prefix = {"importance_sampling": "is"}
    header = ["model", "run", "split", "pair", "epoch", "examples"]
    labels = _summaries(evals, extra)
    own = [c for section in extra for c in section.csv_columns(evals)]
    header += [f"{prefix.get(b, b)}_{k}" for b, k in fields] + [h for h, _ in own] + labels

    def plain(v: Any) -> str:
        n = number(v)
        return "" if n is None else str(int(n)) if isinstance(v, int) else repr(n)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for e in evals:
        writer.writerow([str(e["model"]), str(e["run"]), str(e["split"]), str(e.get("pair") or ""),
                         plain(e.get("epoch")), plain(e.get("examples"))]
                        + [plain((e.get(b) or {}).get(k)) for b, k in fields] + [plain(get(e)) for _, get in own]
                        + [plain(_summary_value(e, lab)) for lab in labels])
    return buf.getvalue()


def report_table(evals: list[dict[str, Any]]) -> tuple[str, str]:
    """(markdown, csv) for the given ``eval.json`` contents, one row per run in the given order."""
    if not evals:
        raise ConfigError("report: no evaluated runs given; pass one or more run folders")
    extra = sections(evals)
    return _markdown(evals, extra), _csv(evals, extra)
