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
    address: Optional[str] = None
    n_workers: Optional[int] = None
    threads_per_worker: int = 1


@dataclass
class TrackingConfig:
    """MLflow tracking: default store sqlite:///mlflow.db in the working directory."""

    enabled: bool = True
    uri: Optional[str] = None
    experiment: str = "trident"


@dataclass
class ProfileConfig:
    enabled: bool = True
    bins: int = 20
    top_k: int = 10
    #: Rows sampled for correlations / associations / duplicates (0 = all rows).
    sample_rows: int = 200000
    near_constant_share: float = 0.98
    high_cardinality: int = 50
    heavy_missing: float = 0.3
    imbalance_ratio: float = 0.1
    leakage_auc: float = 0.98


@dataclass
class ValidationConfig:
    enabled: bool = True
    #: Stop the run when more than this share of rows is quarantined.
    max_quarantine_share: float = 0.5
    #: Numeric ranges in the inferred contract are widened by this share of the observed span.
    range_margin: float = 0.0
    #: Contract to check against (path to a contract.json); inferred from the data when unset.
    contract: Optional[str] = None


@dataclass
class AnyConfig:
    value: Any = None
