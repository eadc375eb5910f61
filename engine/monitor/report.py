"""The drift report: per-feature statistics, verdicts and the correlation shift."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CategoricalDrift", "CorrelationShift", "DriftReport", "NumericDrift"]


@dataclass
class NumericDrift:
    """Drift statistics of one numeric feature (proportions over non-missing values)."""

    feature: str
    psi: float
    js: float
    wasserstein: float
    #: Wasserstein distance divided by the reference standard deviation.
    wasserstein_norm: float
    #: Binned KS statistic: a lower bound of the exact one.
    ks: float
    #: Upper bound of the exact KS statistic from the same bins.
    ks_upper: float
    #: Exact two-sample KS statistic, when requested.
    ks_exact: float | None
    mean_ref: float
    mean_cur: float
    #: (mean_cur - mean_ref) / std_ref.
    mean_shift: float
    std_ref: float
    std_cur: float
    std_ratio: float
    min_cur: float
    max_cur: float
    missing_ref: float
    missing_cur: float
    missing_change: float
    method: str = ""
    statistic: float = math.nan
    threshold: float = math.nan
    drifted: bool = False
    reasons: list[str] = field(default_factory=list)


@dataclass
class CategoricalDrift:
    """Drift statistics of one categorical feature (proportions over non-missing values)."""

    feature: str
    psi: float
    js: float
    chi2: float
    chi2_pvalue: float
    chi2_dof: int
    #: Values absent from the reference, most frequent first: {value: current count}.
    new_categories: dict[str, int]
    #: Reference categories absent from the current data.
    vanished_categories: list[Any]
    n_categories_ref: int
    n_categories_cur: int
    missing_ref: float
    missing_cur: float
    missing_change: float
    method: str = ""
    statistic: float = math.nan
    threshold: float = math.nan
    drifted: bool = False
    reasons: list[str] = field(default_factory=list)


@dataclass
class CorrelationShift:
    """Change of the numeric correlation matrix (current minus reference)."""

    max_abs_diff: float
    #: Frobenius norm of the whole difference matrix (both triangles).
    frobenius: float
    #: The pair with the largest change.
    pair: list[str]
    threshold: float
    drifted: bool


@dataclass
class DriftReport:
    """Result of :func:`engine.monitor.compare`."""

    numeric: dict[str, NumericDrift]
    categorical: dict[str, CategoricalDrift]
    correlation: CorrelationShift | None
    n_rows_reference: int
    n_rows_current: int
    n_features: int
    n_drifted: int
    share_drifted: float
    drift_share: float
    #: Overall verdict: share of drifted features >= drift_share, or the correlation shift.
    drifted: bool
    thresholds: dict[str, Any]

    @property
    def drifted_features(self) -> list[str]:
        return [n for n, d in {**self.numeric, **self.categorical}.items() if d.drifted]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (NaN and infinities become None)."""
        return _clean(asdict(self))

    def to_frame(self) -> Any:
        """One row per feature (pandas DataFrame); statistics that do not apply are NaN."""
        import pandas as pd

        rows = []
        for d in self.numeric.values():
            r = asdict(d)
            r["kind"] = "numeric"
            rows.append(r)
        for d in self.categorical.values():
            r = asdict(d)
            r["kind"] = "categorical"
            r["new_categories"] = len(d.new_categories)
            r["vanished_categories"] = len(d.vanished_categories)
            rows.append(r)
        frame = pd.DataFrame(rows)
        if frame.empty:
            return frame
        first = ["feature", "kind", "drifted", "method", "statistic", "threshold"]
        rest = [c for c in frame.columns if c not in first and c != "reasons"]
        frame["reasons"] = frame["reasons"].map("; ".join)
        return frame[first + rest + ["reasons"]].set_index("feature")

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON, atomically."""
        from engine.atomic import write_json

        return write_json(path, self.to_dict())


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
