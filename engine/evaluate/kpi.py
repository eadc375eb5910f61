"""KPI gates: thresholds such as ``"roc_auc >= 0.75"``, constraints, and the primary KPI for selection.

``KpiSpec.from_config(cfg.kpi, task)`` parses and validates the configuration once (a wrong entry is a
:class:`~engine.errors.ConfigError` naming it); ``spec.check(candidate_record)`` lists every failure of
one candidate with the measured value, the bound and the shortfall.
"""
from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigError
from engine.evaluate.metrics import BINARY_METRICS, LATENCY_METRIC, REGRESSION_METRICS

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
}
_THRESHOLD = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|>|<)\s*"
                        r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
#: Metrics a threshold may name besides the task's own.
FAIRNESS_METRICS: dict[str, str] = {"demographic_parity_diff": "min", "equalized_odds_diff": "min"}


def task_metrics(task: str) -> dict[str, str]:
    """Metric name -> "max" or "min" (the better direction) for ``task``."""
    base = BINARY_METRICS if task == "binary" else REGRESSION_METRICS
    extra = FAIRNESS_METRICS if task == "binary" else {}
    return {**base, **extra, LATENCY_METRIC: "min"}


@dataclass(frozen=True)
class Threshold:
    """One parsed threshold: ``metric op value``."""

    metric: str
    op: str
    value: float
    text: str

    def passes(self, measured: float | None) -> bool:
        if measured is None or (isinstance(measured, float) and math.isnan(measured)):
            return False
        return _OPS[self.op](float(measured), self.value)

    def failure(self, measured: float | None) -> dict[str, Any]:
        """A failure record: what was required, what was measured, and by how much it missed."""
        if measured is None or (isinstance(measured, float) and math.isnan(measured)):
            return {"kpi": self.text, "metric": self.metric, "required": f"{self.op} {self.value:g}",
                    "measured": None, "shortfall": None, "message": f"{self.metric} is undefined"}
        short = abs(float(measured) - self.value)
        return {"kpi": self.text, "metric": self.metric, "required": f"{self.op} {self.value:g}",
                "measured": float(measured), "shortfall": short,
                "message": f"{self.metric} = {float(measured):.4g}, required {self.op} {self.value:g} "
                           f"(misses by {short:.4g})"}


def parse_threshold(text: str, known: dict[str, str], where: str = "kpi.thresholds") -> Threshold:
    """Parse ``"metric op number"`` strictly (op is one of >=, <=, >, <).

    Examples
    --------
    >>> parse_threshold("roc_auc >= 0.75", {"roc_auc": "max"})
    Threshold(metric='roc_auc', op='>=', value=0.75, text='roc_auc >= 0.75')
    """
    if not isinstance(text, str):
        raise ConfigError(f"{where}: {text!r} is not a string like 'roc_auc >= 0.75'")
    m = _THRESHOLD.match(text)
    if not m:
        raise ConfigError(f"{where}: cannot parse {text!r}; expected 'METRIC OP NUMBER' with OP one of "
                          f">=, <=, >, < (e.g. 'roc_auc >= 0.75')")
    metric, op, value = m.group(1), m.group(2), float(m.group(3))
    if metric not in known:
        raise ConfigError(f"{where}: {text!r} names unknown metric {metric!r}; known for this task: "
                          f"{', '.join(sorted(known))}")
    return Threshold(metric, op, value, f"{metric} {op} {value:g}")


@dataclass(frozen=True)
class KpiSpec:
    """The parsed KPI configuration for one task."""

    task: str
    thresholds: tuple[Threshold, ...] = ()
    primary: str = "roc_auc"
    maximize: bool = True
    interpretable: bool = False
    max_latency_ms_per_1000: float | None = None
    max_demographic_parity_diff: float | None = None
    max_equalized_odds_diff: float | None = None
    cost: dict[str, float] = field(default_factory=dict)
    fixed_threshold: float | None = None
    enabled: bool = True

    @classmethod
    def from_config(cls, kpi: Any, task: str) -> "KpiSpec":
        """Validate ``cfg.kpi`` (a KpiConfig or DictConfig) for ``task`` ("binary" or "regression")."""
        known = task_metrics(task)
        hint = " (conf/kpi/regression.yaml holds regression KPIs: kpi=regression)" if task == "regression" else ""
        raw = list(_get(kpi, "thresholds", []) or [])
        try:
            parsed = tuple(parse_threshold(t, known, f"kpi.thresholds[{i}]") for i, t in enumerate(raw))
        except ConfigError as exc:
            raise ConfigError(f"{exc}{hint}") from None
        primary = _get(kpi, "primary", None) or ("roc_auc" if task == "binary" else "rmse")
        if primary not in known or primary in (LATENCY_METRIC, *FAIRNESS_METRICS):
            allowed = sorted(k for k in known if k != LATENCY_METRIC and k not in FAIRNESS_METRICS)
            raise ConfigError(f"kpi.primary: {primary!r} is not a metric of a {task} task; use one of "
                              f"{', '.join(allowed)}{hint}")
        maximize = _get(kpi, "maximize", None)
        maximize = known[primary] == "max" if maximize is None else bool(maximize)
        cost = {k: float(_get(kpi, f"cost_{k}", d)) for k, d in (("fp", 1.0), ("fn", 1.0), ("tp", 0.0),
                                                                   ("tn", 0.0))}
        for k, v in cost.items():
            if not math.isfinite(v):
                raise ConfigError(f"kpi.cost_{k}: {v} is not a finite number")
        fixed = _get(kpi, "threshold", None)
        if fixed is not None and not 0.0 <= float(fixed) <= 1.0:
            raise ConfigError(f"kpi.threshold: {fixed} is not a probability in [0, 1]")
        lat = _get(kpi, "max_latency_ms_per_1000", None)
        if lat is not None and float(lat) <= 0:
            raise ConfigError(f"kpi.max_latency_ms_per_1000: {lat} must be positive (or null)")
        return cls(task=task, thresholds=parsed, primary=primary, maximize=maximize,
                   interpretable=bool(_get(kpi, "interpretable", False)),
                   max_latency_ms_per_1000=None if lat is None else float(lat),
                   max_demographic_parity_diff=_opt_float(_get(kpi, "max_demographic_parity_diff", None)),
                   max_equalized_odds_diff=_opt_float(_get(kpi, "max_equalized_odds_diff", None)),
                   cost=cost, fixed_threshold=None if fixed is None else float(fixed),
                   enabled=bool(_get(kpi, "enabled", True)))

    @property
    def needs_latency(self) -> bool:
        return self.max_latency_ms_per_1000 is not None or any(t.metric == LATENCY_METRIC
                                                                for t in self.thresholds)

    def check(self, metrics: dict[str, Any], interpretable: bool, latency: float | None = None,
              fairness: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every failed threshold or constraint for one candidate (empty: the candidate qualifies).

        ``metrics`` are the candidate's validation metrics; ``fairness`` holds the largest
        ``demographic_parity_diff`` / ``equalized_odds_diff`` over the sensitive attributes.
        """
        if not self.enabled:
            return []
        values = {**metrics, **(fairness or {})}
        if latency is not None:
            values[LATENCY_METRIC] = latency
        fails = [t.failure(values.get(t.metric)) for t in self.thresholds if not t.passes(values.get(t.metric))]
        if self.interpretable and not interpretable:
            fails.append({"kpi": "interpretable: true", "metric": "interpretable", "required": "interpretable",
                          "measured": False, "shortfall": None,
                          "message": "not declared interpretable (kpi.interpretable is true)"})
        limits = ((LATENCY_METRIC, self.max_latency_ms_per_1000, "kpi.max_latency_ms_per_1000"),
                  ("demographic_parity_diff", self.max_demographic_parity_diff, "kpi.max_demographic_parity_diff"),
                  ("equalized_odds_diff", self.max_equalized_odds_diff, "kpi.max_equalized_odds_diff"))
        for metric, limit, key in limits:
            if limit is None:
                continue
            t = Threshold(metric, "<=", float(limit), f"{key}: {limit:g}")
            if not t.passes(values.get(metric)):
                fails.append(t.failure(values.get(metric)))
        return fails

    def better(self, a: float, b: float) -> bool:
        """Whether primary value ``a`` beats ``b`` (NaN never wins)."""
        if a != a:
            return False
        if b != b:
            return True
        return a > b if self.maximize else a < b

    def record(self) -> dict[str, Any]:
        return {"task": self.task, "enabled": self.enabled, "thresholds": [t.text for t in self.thresholds],
                "primary": self.primary, "maximize": self.maximize, "interpretable": self.interpretable,
                "max_latency_ms_per_1000": self.max_latency_ms_per_1000,
                "max_demographic_parity_diff": self.max_demographic_parity_diff,
                "max_equalized_odds_diff": self.max_equalized_odds_diff, "cost": dict(self.cost),
                "fixed_threshold": self.fixed_threshold}


def _get(obj: Any, key: str, default: Any) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    try:
        return getattr(obj, key)
    except (AttributeError, KeyError):
        try:
            return obj[key]
        except Exception:
            return default


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)
