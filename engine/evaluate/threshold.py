"""The decision threshold that minimises the expected business cost on held-out predictions.

A row is predicted positive when ``P(positive) >= threshold``. With costs per outcome
(``fp``, ``fn`` and optionally ``tp``, ``tn``), the expected cost per row of a threshold is
``(c_tp*TP + c_fp*FP + c_fn*FN + c_tn*TN) / N``. Every distinct way of splitting the sorted scores is
tried in one pass (cumulative counts), so the optimum is exact, not a grid approximation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold, its expected cost per row on the data it was chosen on, and how."""

    threshold: float
    expected_cost: float
    method: str

    def record(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "expected_cost": self.expected_cost, "method": self.method}


def cost_curve(y: Any, p: Any, cost: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Candidate thresholds (decreasing) and the expected cost per row of each.

    The first threshold predicts no row positive; each next one adds the rows sharing the next lower
    distinct score. Thresholds lie half-way between neighbouring distinct scores, so a threshold keeps
    the same decisions on rows whose scores differ slightly from the ones it was chosen on.
    """
    yy = np.asarray(y, dtype=np.float64).reshape(-1)
    pp = np.asarray(p, dtype=np.float64).reshape(-1)
    n = yy.size
    if n == 0:
        raise ValueError("cannot choose a threshold on zero rows")
    order = np.argsort(-pp, kind="mergesort")
    ps, ys = pp[order], yy[order]
    last = np.r_[np.flatnonzero(np.diff(ps)), n - 1]
    tp = np.r_[0.0, np.cumsum(ys)[last]]
    pos_pred = np.r_[0.0, last + 1.0]
    fp = pos_pred - tp
    n_pos = ys.sum()
    fn = n_pos - tp
    tn = (n - n_pos) - fp
    total = (cost.get("tp", 0.0) * tp + cost.get("fp", 0.0) * fp + cost.get("fn", 0.0) * fn
             + cost.get("tn", 0.0) * tn) / n
    distinct = ps[last]
    below = np.r_[distinct[1:], np.nan]
    cut = np.where(np.isnan(below), distinct * 0.5, (distinct + below) * 0.5)
    top = distinct[0]
    first = np.nextafter(top, np.inf) if top >= 1.0 else (top + 1.0) * 0.5
    # a midpoint that rounds onto the lower score would admit it: fall back to the score itself
    cut = np.where(cut > np.r_[distinct[1:], -np.inf], cut, distinct)
    cut = np.where(cut <= distinct, cut, distinct)
    return np.r_[first, cut], total


def choose_threshold(y: Any, p: Any, cost: dict[str, float]) -> ThresholdChoice:
    """The threshold with the lowest expected cost per row (ties: the highest such threshold).

    Examples
    --------
    >>> import numpy as np
    >>> c = choose_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]), {"fp": 1, "fn": 1})
    >>> round(c.threshold, 6), c.expected_cost
    (0.6, 0.25)
    """
    thresholds, total = cost_curve(y, p, cost)
    best = int(np.argmin(total))
    return ThresholdChoice(float(thresholds[best]), float(total[best]), "min_expected_cost")
