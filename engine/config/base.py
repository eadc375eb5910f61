"""Config schemas for the foundation groups: backend, data, cluster, tracking, profile, validation."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional


class BackendName(Enum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


class DataSource(Enum):
    synthetic = "synthetic"
    csv = "csv"
    parquet = "parquet"


class Task(Enum):
    binary = "binary"
    regression = "regression"


class ClusterKind(Enum):
    none = "none"
    local = "local"
    local_cuda = "local_cuda"
    address = "address"


@dataclass
class BackendConfig:
    """``backend=auto|cpu|gpu``: auto uses the GPU when NVML reports one and CuPy imports."""

    name: BackendName = BackendName.auto


@dataclass
class DataConfig:
    """Where the data comes from and what it means."""

    source: DataSource = DataSource.synthetic
    #: CSV file, Parquet file or directory of Parquet partitions (csv / parquet sources).
    path: Optional[str] = None
    #: Target column.
    target: str = "default"
    task: Task = Task.binary
    #: For a binary target given as labels (e.g. good/bad): the label that counts as positive (1).
    #: When unset: 1/True/yes/bad/default/positive if present, else the minority label.
    positive_label: Optional[str] = None
    #: Declared column types, overriding inference: {column: numeric|categorical|datetime|text|id}.
    dtypes: dict[str, str] = field(default_factory=dict)
    #: Optional unique row identifier (excluded from features, checked for uniqueness).
    id_column: Optional[str] = None
    #: Optional date column (time-ordered splits when set).
    date_column: Optional[str] = None
    #: Columns to ignore entirely.
    drop: list[str] = field(default_factory=list)
    # synthetic generator
    rows: int = 20000
    seed: int = 0
    #: Produce the drifted "later" dataset instead of the reference one.
    drifted: bool = False


@dataclass
class ClusterConfig:
    """Dask: none (in-process), local (LocalCluster), local_cuda (LocalCUDACluster), address."""

    kind: ClusterKind = ClusterKind.none
    #: Scheduler to join (``tcp://host:8786``); setting it implies kind=address.
    address: Optional[str] = None
    #: Workers of a local cluster (default: one per core, or one per GPU for local_cuda).
    n_workers: Optional[int] = None
    threads_per_worker: int = 1
    #: LocalCluster workers as processes (false: threads in this process, starts instantly).
    processes: bool = True
    #: Per-worker memory limit of a local cluster (e.g. "4GiB"); default: shared out of the machine's RAM.
    memory_limit: Optional[str] = None
    #: Seconds to wait for a scheduler to answer.
    timeout_s: float = 10.0


@dataclass
class TrackingConfig:
    """MLflow tracking: default store sqlite:///mlflow.db in the working directory."""

    enabled: bool = True
    uri: Optional[str] = None
    experiment: str = "trident"


@dataclass
class ProfileConfig:
    """Profiling (EDA): statistics, warnings, profile.json and profile.html (conf/profile/default.yaml)."""

    enabled: bool = True
    #: Histogram bins per numeric column.
    bins: int = 20
    #: Most frequent categories listed per categorical column.
    top_k: int = 10
    #: Rows sampled for correlations, rank statistics (Spearman, ROC AUC) and associations (0 = all rows).
    #: Counts, moments, quantiles, histograms, categories and duplicate rows always use every row.
    sample_rows: int = 200000
    #: Warn "near_constant" when one value covers at least this share of the non-missing values.
    near_constant_share: float = 0.98
    #: Warn "high_cardinality" when a categorical column has more distinct values than this.
    high_cardinality: int = 50
    #: Warn "heavy_missing" when a column's missing share is above this.
    heavy_missing: float = 0.3
    #: Binary target: warn "imbalance" when minority rows per majority row fall below this.
    imbalance_ratio: float = 0.1
    #: Binary target: warn "leakage" when one feature alone reaches this ROC AUC.
    leakage_auc: float = 0.98
    #: Regression target: warn "leakage" when |Spearman| (numeric) or the correlation ratio
    #: (categorical) of one feature reaches this.
    leakage_corr: float = 0.98
    #: Categories with fewer rows than this are pooled before measuring their purity against the target.
    leakage_min_support: int = 20
    #: Categories kept per column for Cramér's V; rarer ones are pooled into one level.
    association_max_levels: int = 50
    #: Numeric matrix precision: float32 (half the memory, ~7 significant digits) or float64.
    precision: str = "float32"
    #: Rows per block in the correlation pass (bounds temporary memory).
    chunk_rows: int = 65536
    #: CPU threads for per-column work (0 = every core).
    threads: int = 0


@dataclass
class ValidationConfig:
    enabled: bool = True
    #: Stop the run when more than this share of rows is quarantined.
    max_quarantine_share: float = 0.5
    #: Numeric ranges in the inferred contract are widened by this share of the observed span.
    range_margin: float = 0.0
    #: Contract to check against (path to a contract.json); inferred from the data when unset.
    contract: Optional[str] = None
    #: Categorical columns with at most this many levels get an allow-list in the contract.
    max_categories: int = 50
    #: Allowed null rate of a column = observed rate + this (exceeding it is a warning).
    null_rate_margin: float = 0.05
    #: A column whose values fail to parse as its kind on more than this share of rows is the wrong
    #: type (the run stops); at or below it, the rows holding them are quarantined.
    max_unparseable_share: float = 0.05
    #: Columns not in the contract: "error" (stop the run) or "drop" (drop them with a warning).
    extra_columns: str = "error"


@dataclass
class AnyConfig:
    value: Any = None
