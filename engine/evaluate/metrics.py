"""Evaluation metrics on host NumPy arrays: ranking, probabilistic, thresholded and regression scores.

Every function takes the true targets and the model's output (P(positive) for binary tasks, the
prediction for regression) and returns plain Python floats, so results go straight into JSON records.
The definitions match scikit-learn's (``roc_auc_score``, ``average_precision_score``, ``log_loss``,
``brier_score_loss``, ``calibration_curve``, ``confusion_matrix``, ``mean_squared_error``, ...); the
tests check them against it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: Metrics reported for a binary task, with the direction that counts as better.
BINARY_METRICS: dict[str, str] = {
    "roc_auc": "max", "pr_auc": "max", "log_loss": "min", "brier": "min", "accuracy": "max",
    "precision": "max", "recall": "max", "f1": "max", "ece": "min", "expected_cost": "min",
}
#: Metrics reported for a regression task.
REGRESSION_METRICS: dict[str, str] = {"rmse": "min", "mae": "min", "r2": "max"}
#: Measured on the predictor, not on the predictions (see engine.evaluate.latency).
LATENCY_METRIC = "latency_ms_per_1000"


def _as_float(a: Any) -> np.ndarray:
    from engine.backend import to_numpy

    return np.asarray(to_numpy(a), dtype=np.float64).reshape(-1)


def _binary(y: Any) -> np.ndarray:
    yb = _as_float(y)
    bad = ~np.isin(yb, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"binary targets must be 0/1; found {yb[bad][0]!r}")
    return yb


def _ranking_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, scores taken in decreasing order."""
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(ps)), ys.size - 1]
    tps = np.cumsum(ys)[last]
    fps = (last + 1) - tps
    return tps, fps, ps[last]


def roc_auc(y: Any, p: Any) -> float:
    """Area under the ROC curve (trapezoidal, ties counted half); NaN when only one class is present."""
    yb, pp = _binary(y), _as_float(p)
    n_pos = yb.sum()
    n_neg = yb.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    tps, fps, _ = _ranking_curve(yb, pp)
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    return float(np.trapezoid(tpr, fpr))


def pr_auc(y: Any, p: Any) -> float:
    """Average precision: sum over thresholds of (recall step) x precision; NaN without positives."""
    yb, pp = _binary(y), _as_float(p)
    n_pos = yb.sum()
    if n_pos == 0:
        return float("nan")
    tps, fps, _ = _ranking_curve(yb, pp)
    precision = tps / (tps + fps)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def log_loss(y: Any, p: Any) -> float:
    """Mean negative log-likelihood; probabilities clipped to [eps, 1 - eps] (float64 eps)."""
    yb = _binary(y)
    eps = np.finfo(np.float64).eps
    pp = np.clip(_as_float(p), eps, 1 - eps)
    return float(-np.mean(yb * np.log(pp) + (1 - yb) * np.log(1 - pp)))


def brier(y: Any, p: Any) -> float:
    """Mean squared difference between P(positive) and the 0/1 outcome."""
    yb, pp = _binary(y), _as_float(p)
    return float(np.mean((pp - yb) ** 2))


def confusion(y: Any, y_hat: Any) -> dict[str, int]:
    """Counts ``{"tn", "fp", "fn", "tp"}`` for 0/1 targets and 0/1 decisions."""
    yb = _binary(y).astype(bool)
    hb = _binary(y_hat).astype(bool)
    return {"tn": int(np.sum(~yb & ~hb)), "fp": int(np.sum(~yb & hb)),
            "fn": int(np.sum(yb & ~hb)), "tp": int(np.sum(yb & hb))}


def at_threshold(y: Any, p: Any, threshold: float) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 (0 where undefined, like scikit-learn) and the confusion counts
    when rows with ``p >= threshold`` are predicted positive."""
    yb, pp = _binary(y), _as_float(p)
    cm = confusion(yb, (pp >= threshold).astype(np.float64))
    tp, fp, fn, tn = cm["tp"], cm["fp"], cm["fn"], cm["tn"]
    n = max(tp + fp + fn + tn, 1)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {"accuracy": (tp + tn) / n, "precision": precision, "recall": recall, "f1": f1,
            "confusion": cm}


def calibration(y: Any, p: Any, n_bins: int = 10) -> dict[str, Any]:
    """Reliability diagram on ``n_bins`` equal-width bins of [0, 1] and the expected calibration error.

    Bins are closed on the right, ``(lo, hi]`` (the first one also holds 0), like scikit-learn's
    ``calibration_curve``.

    Returns ``{"bins": [{"lo", "hi", "count", "mean_predicted", "fraction_positive"}], "ece"}``; empty
    bins are listed with count 0 and null means. ECE is the count-weighted mean of
    ``|mean_predicted - fraction_positive|``.
    """
    yb, pp = _binary(y), _as_float(p)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges[1:-1], pp, side="left"), 0, n_bins - 1)  # (lo, hi], as sklearn
    count = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=pp, minlength=n_bins)
    sum_y = np.bincount(idx, weights=yb, minlength=n_bins)
    bins = []
    ece = 0.0
    for b in range(n_bins):
        c = int(count[b])
        mp = float(sum_p[b] / c) if c else None
        fp = float(sum_y[b] / c) if c else None
        if c:
            ece += c * abs(mp - fp)
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": c, "mean_predicted": mp,
                     "fraction_positive": fp})
    return {"bins": bins, "ece": float(ece / max(pp.size, 1))}


def expected_cost(y: Any, p: Any, threshold: float, cost: dict[str, float]) -> float:
    """Mean cost per row of deciding ``p >= threshold`` under ``cost`` = {"fp", "fn", "tp", "tn"}."""
    cm = confusion(y, (_as_float(p) >= threshold).astype(np.float64))
    n = max(sum(cm.values()), 1)
    return float(sum(cost.get(k, 0.0) * cm[k] for k in ("tp", "fp", "fn", "tn")) / n)


def binary_metrics(y: Any, p: Any, threshold: float, cost: dict[str, float] | None = None,
                   n_bins: int = 10) -> dict[str, Any]:
    """Every binary metric for P(positive) ``p``; thresholded ones at ``threshold``.

    Scalars are floats (NaN where undefined); ``confusion`` and ``calibration`` are nested records.
    """
    cal = calibration(y, p, n_bins)
    out: dict[str, Any] = {"roc_auc": roc_auc(y, p), "pr_auc": pr_auc(y, p), "log_loss": log_loss(y, p),
                           "brier": brier(y, p), "ece": cal["ece"]}
    out.update(at_threshold(y, p, threshold))
    out["calibration"] = cal["bins"]
    out["threshold"] = float(threshold)
    if cost is not None:
        out["expected_cost"] = expected_cost(y, p, threshold, cost)
    return out


def rmse(y: Any, pred: Any) -> float:
    return float(np.sqrt(np.mean((_as_float(y) - _as_float(pred)) ** 2)))


def mae(y: Any, pred: Any) -> float:
    return float(np.mean(np.abs(_as_float(y) - _as_float(pred))))


def r2(y: Any, pred: Any) -> float:
    """Coefficient of determination; 1.0 for a perfect fit of a constant target, 0.0 otherwise (as sklearn)."""
    yy, pp = _as_float(y), _as_float(pred)
    ss_res = float(np.sum((yy - pp) ** 2))
    ss_tot = float(np.sum((yy - yy.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def regression_metrics(y: Any, pred: Any) -> dict[str, float]:
    """RMSE, MAE and R² of ``pred``."""
    return {"rmse": rmse(y, pred), "mae": mae(y, pred), "r2": r2(y, pred)}


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar entries of a metrics record (what KPIs and trackers read)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)}
