"""Per-group performance for sensitive attributes: selection rate, TPR, FPR, AUC, and the gaps between groups.

Sensitive attributes never enter the features, but the model is still judged on them: for each
attribute the rows are grouped (numeric attributes with many values, such as age, are first cut into
quantile bands fitted on the training rows) and, for a binary task, every group's selection rate
(share predicted positive), true- and false-positive rates and ROC AUC are reported, with

* demographic parity difference: largest minus smallest selection rate;
* equalised-odds difference: the larger of the TPR gap and the FPR gap.

Groups smaller than ``min_group`` rows are listed but left out of the differences (their rates are
noise). For regression, each group's RMSE and MAE are reported.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from engine.evaluate import metrics as M

MISSING = "(missing)"


def _is_numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "biuf"


def band_edges(values: Any, bands: int = 4, max_levels: int = 10) -> list[float] | None:
    """Quantile band edges for a numeric attribute with more than ``max_levels`` distinct values, else None.

    Edges are rounded to 3 significant digits so the bands read well ("[25, 33.5)").
    """
    v = np.asarray(values)
    if not _is_numeric(v):
        return None
    v = v.astype(np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 or np.unique(v).size <= max_levels:
        return None
    q = np.quantile(v, np.linspace(0.0, 1.0, bands + 1))
    edges = np.unique([float(f"{x:.3g}") for x in q])
    return [float(e) for e in edges] if edges.size >= 2 else None


def group_labels(values: Any, edges: list[float] | None) -> np.ndarray:
    """The group of every row: its band "[lo, hi)" when ``edges`` are given, else its value as text."""
    v = np.asarray(values)
    if edges is None:
        out = np.empty(v.shape[0], dtype=object)
        for i, x in enumerate(v.tolist()):
            missing = x is None or (isinstance(x, float) and x != x) or str(x) in ("nan", "NaT", "<NA>")
            out[i] = MISSING if missing else str(x)
        return out
    f = v.astype(np.float64)
    e = np.asarray(edges, dtype=np.float64)
    names = [f"[{e[i]:g}, {e[i + 1]:g})" for i in range(e.size - 2)] + [f"[{e[-2]:g}, {e[-1]:g}]"]
    names = [f"< {e[0]:g}"] + names + [f"> {e[-1]:g}"]
    idx = np.searchsorted(e, f, side="right")  # 0: below the first edge; e.size: above the last
    idx = np.where(f == e[-1], e.size - 1, idx)
    out = np.array([names[i] for i in idx], dtype=object)
    out[~np.isfinite(f)] = MISSING
    return out


def _rate(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def group_table(y: Any, score: Any, groups: np.ndarray, task: str = "binary", threshold: float = 0.5,
                min_group: int = 30) -> dict[str, Any]:
    """Per-group metrics for one attribute and the differences between the groups compared."""
    yy = np.asarray(y, dtype=np.float64).reshape(-1)
    ss = np.asarray(score, dtype=np.float64).reshape(-1)
    rows = []
    for g in sorted(set(groups.tolist()), key=lambda s: (s == MISSING, _sort_key(s))):
        m = groups == g
        n = int(m.sum())
        yg, sg = yy[m], ss[m]
        if task == "binary":
            hit = sg >= threshold
            pos, neg = yg == 1, yg == 0
            auc = M.roc_auc(yg, sg) if pos.any() and neg.any() else None
            rows.append({"group": g, "n": n, "base_rate": _rate(pos.sum(), n),
                         "selection_rate": _rate(hit.sum(), n), "tpr": _rate((hit & pos).sum(), pos.sum()),
                         "fpr": _rate((hit & neg).sum(), neg.sum()), "auc": auc,
                         "compared": n >= min_group})
        else:
            rows.append({"group": g, "n": n, "mean_target": float(yg.mean()), "mean_prediction": float(sg.mean()),
                         "rmse": M.rmse(yg, sg), "mae": M.mae(yg, sg), "compared": n >= min_group})
    out: dict[str, Any] = {"groups": rows}
    if task == "binary":
        cmp_rows = [r for r in rows if r["compared"]]
        out["demographic_parity_diff"] = _spread([r["selection_rate"] for r in cmp_rows])
        tpr_gap = _spread([r["tpr"] for r in cmp_rows])
        fpr_gap = _spread([r["fpr"] for r in cmp_rows])
        gaps = [g for g in (tpr_gap, fpr_gap) if g is not None]
        out["equalized_odds_diff"] = max(gaps) if gaps else None
        out["tpr_gap"] = tpr_gap
        out["fpr_gap"] = fpr_gap
    return out


def _spread(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(max(v) - min(v)) if len(v) >= 2 else None


def _sort_key(label: str) -> tuple[int, float, str]:
    """Bands in numeric order, other labels alphabetically."""
    s = label.lstrip("[<> ")
    try:
        return (0, float(s.split(",")[0]) if not label.startswith(">") else float("inf"), label)
    except ValueError:
        return (1, 0.0, label)


def fairness_report(y: Any, score: Any, attributes: dict[str, Any], task: str = "binary",
                    threshold: float = 0.5, min_group: int = 30,
                    edges: dict[str, list[float] | None] | None = None) -> dict[str, Any]:
    """``{attribute: group_table + {"bands": edges}}`` for every sensitive attribute given.

    ``attributes`` maps attribute name -> raw values of the evaluated rows; ``edges`` (from
    :func:`band_edges` on the training rows) bins numeric attributes.
    """
    out = {}
    for name in sorted(attributes):
        e = (edges or {}).get(name)
        table = group_table(y, score, group_labels(attributes[name], e), task, threshold, min_group)
        table["bands"] = e
        out[name] = table
    return out


def worst_gaps(report: dict[str, Any]) -> dict[str, float | None]:
    """The largest demographic-parity and equalised-odds differences over all attributes."""
    out: dict[str, float | None] = {}
    for key in ("demographic_parity_diff", "equalized_odds_diff"):
        vals = [t.get(key) for t in report.values() if t.get(key) is not None]
        out[key] = max(vals) if vals else None
    return out
