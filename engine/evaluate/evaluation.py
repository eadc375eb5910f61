"""Score candidates on the validation split, gate them on the KPIs, choose one.

The pure core of the ``evaluate`` and ``select`` stages: arrays and candidates in, JSON-able records
out. Nothing here knows about the run folder.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.evaluate import metrics as M
from engine.evaluate.fairness import fairness_report, worst_gaps
from engine.evaluate.kpi import KpiSpec
from engine.evaluate.latency import latency_ms_per_1000
from engine.evaluate.threshold import ThresholdChoice, choose_threshold


def scores(estimator: Any, X: Any, task: str) -> np.ndarray:
    """P(positive) for a binary task, the prediction for regression; host float64."""
    from engine.export.onnx import estimator_scores

    return estimator_scores(estimator, X, task)


def decision_threshold(y: np.ndarray, p: np.ndarray, spec: KpiSpec) -> ThresholdChoice:
    """The fixed ``kpi.threshold`` when set, else the cost-optimal threshold on (y, p)."""
    if spec.fixed_threshold is not None:
        t = float(spec.fixed_threshold)
        return ThresholdChoice(t, M.expected_cost(y, p, t, spec.cost), "fixed")
    return choose_threshold(y, p, spec.cost)


def split_metrics(y: np.ndarray, s: np.ndarray, task: str, threshold: float | None, spec: KpiSpec,
                  n_bins: int = 10) -> dict[str, Any]:
    """Every metric of scores ``s`` against ``y`` (thresholded ones at ``threshold`` for binary tasks)."""
    if task == "binary":
        return M.binary_metrics(y, s, float(threshold), spec.cost, n_bins)
    return M.regression_metrics(y, s)


def evaluate_candidate(cand: Any, X_valid: Any, y_valid: np.ndarray, task: str, spec: KpiSpec, *,
                       n_bins: int = 10, sensitive: dict[str, Any] | None = None,
                       band_edges: dict[str, Any] | None = None, min_group: int = 30,
                       measure_latency: bool = True) -> tuple[dict[str, Any], np.ndarray]:
    """One candidate's validation record (metrics, threshold, KPI verdict) and its validation scores."""
    s = scores(cand.estimator, X_valid, task)
    rec: dict[str, Any] = {"name": cand.name, "library": cand.library, "interpretable": bool(cand.interpretable),
                           "params": _jsonable(dict(cand.params)), "cv": _jsonable(dict(cand.cv))}
    threshold = None
    if task == "binary":
        choice = decision_threshold(y_valid, s, spec)
        threshold = choice.threshold
        rec["threshold"] = choice.record()
    m = split_metrics(y_valid, s, task, threshold, spec, n_bins)
    rec["valid"] = m
    latency = None
    if measure_latency:
        latency = latency_ms_per_1000(cand.estimator, X_valid, task)
    rec["latency_ms_per_1000"] = latency
    fair = None
    if sensitive:
        rep = fairness_report(y_valid, s, sensitive, task, threshold if threshold is not None else 0.5,
                              min_group, band_edges)
        fair = worst_gaps(rep) if task == "binary" else {}
        rec["fairness_valid"] = fair
        rec["fairness_valid_groups"] = rep
    fails = spec.check(M.scalar_metrics(m), bool(cand.interpretable), latency, fair)
    rec["kpi"] = {"passed": not fails, "failures": fails}
    return rec, s


def evaluation_test(cand: Any, X_test: Any, y_test: np.ndarray, task: str, threshold: float | None,
                    spec: KpiSpec, *, n_bins: int = 10, sensitive: dict[str, Any] | None = None,
                    band_edges: dict[str, Any] | None = None,
                    min_group: int = 30) -> tuple[dict[str, Any], np.ndarray, dict[str, Any]]:
    """The chosen candidate on the test split: (metrics at the validation threshold, scores, fairness)."""
    if X_test is None or y_test.size == 0:
        return {}, np.zeros(0), {}
    s = scores(cand.estimator, X_test, task)
    m = _jsonable(split_metrics(y_test, s, task, threshold, spec, n_bins))
    fair = {}
    if sensitive:
        fair = _jsonable(fairness_report(y_test, s, sensitive, task, threshold if threshold is not None else 0.5,
                                         min_group, band_edges))
    return m, s, fair


def select(records: list[dict[str, Any]], spec: KpiSpec) -> dict[str, Any] | None:
    """The qualifying record with the best primary metric (first in order on ties); None if none qualifies."""
    best = None
    for r in records:
        if not r["kpi"]["passed"]:
            continue
        v = _primary(r, spec)
        if best is None or spec.better(v, _primary(best, spec)):
            best = r
    return best


def _primary(rec: dict[str, Any], spec: KpiSpec) -> float:
    v = rec["valid"].get(spec.primary)
    return float("nan") if v is None else float(v)


def rejection_reason(records: list[dict[str, Any]]) -> str:
    """One line per candidate naming each KPI it failed and by how much."""
    parts = []
    for r in records:
        msgs = "; ".join(f["message"] for f in r["kpi"]["failures"]) or "passed"
        parts.append(f"{r['name']}: {msgs}")
    return "no candidate met the KPIs - " + " | ".join(parts)


def _jsonable(obj: Any) -> Any:
    """Plain JSON types: NumPy scalars to Python, NaN / inf to None, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


jsonable = _jsonable
