"""``cmmkit report``: evaluated runs side by side in the shape of the paper's Table 2.

Reads the ``eval.json`` that ``cmmkit evaluate RUN`` writes and renders one markdown row per run
(Parzen log-likelihood, variational lower bound, importance-sampled log p(x|y), bits/dim,
attribute mean AUC with the real-face ceiling), a second table of the AUC of the attributes the
paper's figures vary, and a CSV of the same numbers unformatted for plotting. Numbers from
different splits or judges are not comparable, so the markdown says so when they are mixed.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from cmmkit.errors import CheckpointError, ConfigError
from cmmkit.evaluation import EVAL_FILE

REQUIRED_KEYS = ("model", "split", "run")
BLOCKS = ("bound", "importance_sampling", "parzen", "attribute_fidelity")
KEY_ATTRIBUTES = ["Male", "Asian", "Eyeglasses", "Mouth Slightly Open", "Bushy Eyebrows", "Big Nose",
                  "Pointy Nose", "Big Lips", "Mustache"]
DASH = "—"


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
    for block in BLOCKS:
        if data.get(block) is not None and not isinstance(data[block], dict):
            raise CheckpointError(f"{path}: {block!r} must be an object or null, got {type(data[block]).__name__}")
    return data


def _num(value: Any) -> float | None:
    """A finite number, or None for missing / null / NaN / non-numeric values."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _get(ev: dict[str, Any], block: str, key: str) -> float | None:
    return _num((ev.get(block) or {}).get(key))


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


def _key_attributes(evals: list[dict[str, Any]]) -> list[str]:
    """The paper's attributes when the judges know them, else the first judge's own attributes."""
    judged = [e["attribute_fidelity"] for e in evals if e.get("attribute_fidelity")]
    known = {name for f in judged for name in (f.get("auc") or {})}
    keys = [a for a in KEY_ATTRIBUTES if a in known]
    return keys if keys else (list(judged[0].get("auc") or {}) if judged else [])


# the main table's columns, in :func:`_row`'s order: (header, the eval.json block it needs or None)
COLUMNS = [("Model", None), ("Run", None), ("Split", None), ("Parzen log-likelihood (nats)", "parzen"),
           ("Variational lower bound (nats)", "bound"), ("IS log p(x|y) (nats, K)", "importance_sampling"),
           ("Bound bits/dim", "bound"), ("Attribute mean AUC (real faces)", "attribute_fidelity")]


def _row(ev: dict[str, Any]) -> list[str]:
    """One cell per entry of :data:`COLUMNS`."""
    is_block = ev.get("importance_sampling") or {}
    is_text = _nats(_get(ev, "importance_sampling", "nats"), _get(ev, "importance_sampling", "nats_std"))
    if is_text != DASH and _num(is_block.get("k")) is not None:
        extra = f"K={int(is_block['k']):,}"
        m, n = _num(is_block.get("examples")), _num(ev.get("examples"))
        if m is not None and n is not None and m < n:
            extra += f", {int(m):,} ex."
        is_text += f" ({extra})"
    bpd = _get(ev, "bound", "bits_per_dim")
    auc, real = _get(ev, "attribute_fidelity", "mean_auc"), _get(ev, "attribute_fidelity", "real_mean_auc")
    auc_text = DASH if auc is None else f"{auc:.3f}" + (f" (real {real:.3f})" if real is not None else "")
    return [str(ev["model"]), str(ev["run"]), str(ev["split"]),
            _nats(_get(ev, "parzen", "nats"), _get(ev, "parzen", "nats_std")),
            _nats(_get(ev, "bound", "nats"), _get(ev, "bound", "nats_std")),
            is_text, DASH if bpd is None else f"{bpd:.3f}", auc_text]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def _warnings(evals: list[dict[str, Any]]) -> list[str]:
    out = []
    for key, what in (("split", "splits"), ("pair", "pairs")):
        values = sorted({str(e.get(key)) for e in evals if e.get(key) is not None})
        if len(values) > 1:
            out.append(f"> **Warning:** these runs were evaluated on different {what} ({', '.join(values)}); "
                       "their numbers are not comparable.")
    judges = sorted({str(e["attribute_fidelity"].get("judge")) for e in evals if e.get("attribute_fidelity")})
    if len(judges) > 1:
        out.append(f"> **Warning:** attribute AUCs come from different judges ({', '.join(judges)}); "
                   "they are not comparable.")
    return out


def _markdown(evals: list[dict[str, Any]], keys: list[str]) -> str:
    lines = _warnings(evals)
    lines += [""] if lines else []
    rows = [_row(e) for e in evals]
    # a measure no run has (e.g. Parzen or attribute AUC for a translation pair) gets no column
    keep = [i for i, (_, block) in enumerate(COLUMNS) if block is None or any(e.get(block) for e in evals)]
    lines += _table([COLUMNS[i][0] for i in keep], [[r[i] for i in keep] for r in rows])
    parzen = [e["parzen"] for e in evals if _get(e, "parzen", "nats") is not None]
    if parzen:
        note = next((p["note"] for p in parzen if isinstance(p.get("note"), str) and p["note"]), None)
        if note is None:
            from cmmkit.evaluation.parzen import PARZEN_NOTE  # imports torch; only when needed

            note = PARZEN_NOTE
        lines += ["", f"*Note:* {note}"]
    lines += _pair_measures(evals)
    judged = [e for e in evals if e.get("attribute_fidelity")]
    if judged and keys:
        rows = []
        for e in judged:
            auc = e["attribute_fidelity"].get("auc") or {}
            rows.append([str(e["model"]), str(e["run"])] + [_auc(auc.get(k)) for k in keys])
        first = judged[0]["attribute_fidelity"]
        real = first.get("real_auc") or {}
        rows.append(["real faces", f"judge {first.get('judge', DASH)}"] + [_auc(real.get(k)) for k in keys])
        lines += ["", "Attribute AUC of generated faces (judge scores vs. requested attributes):", ""]
        lines += _table(["Model", "Run"] + keys, rows)
    return "\n".join(lines) + "\n"


def _summaries(evals: list[dict[str, Any]]) -> list[str]:
    """Column labels of the pair measures' summaries (e.g. BLEU, digit accuracy), in first-seen order."""
    labels: list[str] = []
    for e in evals:
        for name in e.get("pair_metrics") or []:
            if name == "attribute_fidelity":
                continue  # has its own columns
            for label in ((e.get(name) or {}).get("summary") or {}):
                if label not in labels:
                    labels.append(label)
    return labels


def _summary_value(ev: dict[str, Any], label: str) -> float | None:
    for name in ev.get("pair_metrics") or []:
        value = _num(((ev.get(name) or {}).get("summary") or {}).get(label))
        if value is not None:
            return value
    return None


def _pair_measures(evals: list[dict[str, Any]]) -> list[str]:
    labels = _summaries(evals)
    if not labels:
        return []
    rows = [[str(e["model"]), str(e["run"])] + [DASH if (v := _summary_value(e, lab)) is None else f"{v:,.4g}"
                                              for lab in labels] for e in evals]
    return ["", "Measures the pair declares:", ""] + _table(["Model", "Run"] + labels, rows)


def _auc(value: Any) -> str:
    v = _num(value)
    return DASH if v is None else f"{v:.3f}"


def _csv(evals: list[dict[str, Any]], keys: list[str]) -> str:
    fields = [("parzen", "nats"), ("parzen", "nats_std"), ("parzen", "sigma"), ("parzen", "samples"),
              ("bound", "nats"), ("bound", "nats_std"), ("bound", "bits_per_dim"),
              ("importance_sampling", "nats"), ("importance_sampling", "nats_std"), ("importance_sampling", "k"),
              ("importance_sampling", "examples"), ("importance_sampling", "bits_per_dim"),
              ("attribute_fidelity", "mean_auc"), ("attribute_fidelity", "real_mean_auc")]
    prefix = {"importance_sampling": "is", "attribute_fidelity": "attr"}
    header = ["model", "run", "split", "pair", "epoch", "examples"]
    labels = _summaries(evals)
    header += [f"{prefix.get(b, b)}_{k}" for b, k in fields] + [f"auc_{k}" for k in keys] + labels

    def plain(v: Any) -> str:
        n = _num(v)
        return "" if n is None else str(int(n)) if isinstance(v, int) else repr(n)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for e in evals:
        auc = (e.get("attribute_fidelity") or {}).get("auc") or {}
        writer.writerow([str(e["model"]), str(e["run"]), str(e["split"]), str(e.get("pair") or ""),
                         plain(e.get("epoch")), plain(e.get("examples"))]
                        + [plain((e.get(b) or {}).get(k)) for b, k in fields] + [plain(auc.get(k)) for k in keys]
                        + [plain(_summary_value(e, lab)) for lab in labels])
    return buf.getvalue()


def report_table(evals: list[dict[str, Any]]) -> tuple[str, str]:
    """(markdown, csv) for the given ``eval.json`` contents, one row per run in the given order."""
    if not evals:
        raise ConfigError("report: no evaluated runs given; pass one or more run folders")
    keys = _key_attributes(evals)
    return _markdown(evals, keys), _csv(evals, keys)
