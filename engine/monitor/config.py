"""Config schema for this stage (registered by engine.config.schema); values in conf/monitor/."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class NumericMethod(Enum):
    """The statistic that decides a numeric feature's drift verdict."""

    psi = "psi"
    js = "js"
    ks = "ks"
    wasserstein = "wasserstein"


class CategoricalMethod(Enum):
    """The statistic that decides a categorical feature's drift verdict."""

    psi = "psi"
    js = "js"
    chi2 = "chi2"


@dataclass
class MonitorConfig:
    """Drift thresholds and monitoring (conf/monitor).

    A feature drifts when its method's statistic passes its threshold (``>`` for distances,
    ``<`` for the chi-square p-value) or when its missing rate moved by more than
    ``missing_rate_threshold``. The dataset drifts when at least ``drift_share`` of the features
    drift or when a correlation between numeric features moved by more than
    ``correlation_threshold``.
    """

    enabled: bool = True
    #: Quantile bins per numeric feature in the reference sketch.
    bins: int = 10
    numeric_method: NumericMethod = NumericMethod.psi
    categorical_method: CategoricalMethod = CategoricalMethod.psi
    #: Population stability index above which a feature drifts (0.1 moderate, 0.25 major shift).
    psi_threshold: float = 0.2
    #: Jensen-Shannon distance (base 2, in [0, 1]).
    js_threshold: float = 0.1
    #: Kolmogorov-Smirnov statistic (binned unless exact KS was requested).
    ks_threshold: float = 0.1
    #: Binned Wasserstein distance divided by the reference standard deviation.
    wasserstein_threshold: float = 0.1
    #: Chi-square two-sample test p-value below which a categorical feature drifts.
    chi2_pvalue: float = 0.05
    #: Absolute change of the missing-value rate that counts as drift on its own.
    missing_rate_threshold: float = 0.05
    #: Share of drifted features from which the whole dataset counts as drifted.
    drift_share: float = 0.5
    #: Largest absolute change of a numeric correlation that counts as dataset drift.
    correlation_threshold: float = 0.2
    #: Floor for empty-bin proportions in PSI (avoids log(0)).
    psi_epsilon: float = 1e-4
    #: Categorical columns found by inference with more distinct values are left out of the sketch.
    max_categories: int = 1000
    #: ``trident run``'s reference stage watches categorical features with at most this many levels
    #: (PSI and chi-square over hundreds of sparse levels flag noise on ordinary sample sizes).
    reference_max_levels: int = 100
    #: Rows handed to the kernels at a time (bounds memory on large inputs; data already on the GPU
    #: goes in blocks of at least 8M rows).
    chunk_rows: int = 262144
    #: Rows sampled to place quantile edges when the reference comes in chunks or Dask partitions.
    quantile_sample_rows: int = 1000000
