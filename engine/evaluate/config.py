"""Config schema for this stage (registered by engine.config.schema)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class KpiConfig:
    """KPI thresholds, constraints and the cost matrix (conf/kpi).

    Candidates are scored on the validation split; a candidate qualifies when it meets every threshold
    and constraint; the qualifying candidate with the best ``primary`` metric is chosen and its test-split
    metrics are reported. No qualifying candidate ends the run ``rejected``.
    """

    #: false: report every metric but gate on nothing (the best by ``primary`` is chosen).
    enabled: bool = True
    #: Each entry "METRIC OP NUMBER", OP one of >=, <=, >, <. Binary metrics: roc_auc, pr_auc, log_loss,
    #: brier, accuracy, precision, recall, f1, ece, expected_cost; regression: rmse, mae, r2; both:
    #: latency_ms_per_1000; binary: demographic_parity_diff, equalized_odds_diff.
    thresholds: list[str] = field(default_factory=lambda: ["roc_auc >= 0.7"])
    #: Selection metric; null: roc_auc (binary) or rmse (regression).
    primary: Optional[str] = None
    #: Direction of ``primary``; null: the metric's natural direction.
    maximize: Optional[bool] = None
    #: true admits only candidates declared interpretable (linear models, shallow trees).
    interpretable: bool = False
    #: Largest batch-prediction latency per 1,000 rows (ms), timed on the estimator's predict_proba
    #: (predict for regression) on 1,000 validation rows, best of 3; null: no limit.
    max_latency_ms_per_1000: Optional[float] = None
    #: Business cost of each outcome; the decision threshold minimises the expected cost per row on
    #: the validation split.
    cost_fp: float = 1.0
    cost_fn: float = 1.0
    cost_tp: float = 0.0
    cost_tn: float = 0.0
    #: A fixed decision threshold instead of the cost-optimal one; null: minimise the expected cost.
    threshold: Optional[float] = None
    #: Equal-width bins of the reliability diagram (calibration) and of the ECE.
    calibration_bins: int = 10
    #: Fairness gates on the validation split (largest over the sensitive attributes); null: report only.
    max_demographic_parity_diff: Optional[float] = None
    max_equalized_odds_diff: Optional[float] = None
    #: Groups smaller than this are reported but left out of the parity / odds differences.
    fairness_min_group: int = 30
    #: Numeric sensitive attributes with more distinct values than this are binned into quantile bands.
    fairness_max_levels: int = 10
    #: Number of quantile bands for numeric sensitive attributes (e.g. age).
    fairness_bands: int = 4
    #: ONNX parity gate: largest allowed |ONNX - original| on the validation rows (probability for
    #: binary tasks; for regression, relative to max(1, |prediction|)).
    onnx_max_abs_diff: float = 1e-4
    #: Validation rows used by the ONNX parity gate (0 = all).
    onnx_parity_rows: int = 20000
