"""How ``cmmkit report`` shows attribute fidelity (:mod:`cmmkit_lfw.fidelity`): the mean AUC with
the real-face ceiling in the main table, a table of the AUC of the attributes the paper's figures
vary (with the judge on real faces as the last row), the same numbers in the CSV, and a warning
when the runs were judged by different judges (their AUCs are not comparable)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cmmkit.api import DASH, Column, ReportSection, markdown_table, number

MEASURE = "attribute_fidelity"
#: the attributes the paper's figures vary, shown first (and alone when the judge knows them)
KEY_ATTRIBUTES = ["Male", "Asian", "Eyeglasses", "Mouth Slightly Open", "Bushy Eyebrows", "Big Nose",
                  "Pointy Nose", "Big Lips", "Mustache"]


def _block(ev: dict[str, Any]) -> dict[str, Any]:
    block = ev.get(MEASURE)
    return block if isinstance(block, dict) else {}  # null, or not an object: nothing to show


def _auc(value: Any) -> str:
    v = number(value)
    return DASH if v is None else f"{v:.3f}"


def key_attributes(evals: list[dict[str, Any]]) -> list[str]:
    """The paper's attributes when the judges know them, else the first judge's own attributes."""
    judged = [_block(e) for e in evals if _block(e)]
    known = {name for f in judged for name in (f.get("auc") or {})}
    keys = [a for a in KEY_ATTRIBUTES if a in known]
    return keys if keys else (list(judged[0].get("auc") or {}) if judged else [])


def _mean_cell(ev: dict[str, Any]) -> str:
    auc, real = number(_block(ev).get("mean_auc")), number(_block(ev).get("real_mean_auc"))
    return DASH if auc is None else f"{auc:.3f}" + (f" (real {real:.3f})" if real is not None else "")


class AttributeFidelityReport(ReportSection):
    measure = MEASURE

    def columns(self, evals: list[dict[str, Any]]) -> list[Column]:
        return [Column("Attribute mean AUC (real faces)", _mean_cell, MEASURE)]  # shown when a run has it

    def tables(self, evals: list[dict[str, Any]]) -> list[str]:
        keys = key_attributes(evals)
        judged = [e for e in evals if _block(e)]
        if not judged or not keys:
            return []
        rows = [[str(e["model"]), str(e["run"])] + [_auc((_block(e).get("auc") or {}).get(k)) for k in keys]
                for e in judged]
        first = _block(judged[0])
        real = first.get("real_auc") or {}
        rows.append(["real faces", f"judge {first.get('judge', DASH)}"] + [_auc(real.get(k)) for k in keys])
        return ["", "Attribute AUC of generated faces (judge scores vs. requested attributes):", "",
                *markdown_table(["Model", "Run"] + keys, rows)]

    def csv_columns(self, evals: list[dict[str, Any]]) -> list[tuple[str, Callable[[dict[str, Any]], Any]]]:
        out: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
            ("attr_mean_auc", lambda e: _block(e).get("mean_auc")),
            ("attr_real_mean_auc", lambda e: _block(e).get("real_mean_auc"))]
        return out + [(f"auc_{k}", lambda e, k=k: (_block(e).get("auc") or {}).get(k)) for k in key_attributes(evals)]

    def warnings(self, evals: list[dict[str, Any]]) -> list[str]:
        judges = sorted({str(_block(e).get("judge")) for e in evals if _block(e)})
        if len(judges) > 1:
            return [f"> **Warning:** attribute AUCs come from different judges ({', '.join(judges)}); "
                    "they are not comparable."]
        return []
