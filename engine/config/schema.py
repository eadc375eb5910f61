"""The top-level run configuration, assembled from each stage's schema."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.config.base import (
    BackendConfig,
    ClusterConfig,
    DataConfig,
    ProfileConfig,
    TrackingConfig,
    ValidationConfig,
)
from engine.evaluate.config import KpiConfig
from engine.features.config import FeaturesConfig
from engine.governance.config import GovernanceConfig
from engine.monitor.config import MonitorConfig
from engine.serve.config import DeployConfig
from engine.train.config import ModelConfig, SearchConfig

#: (group name, schema) for every config group; conf/<group>/<option>.yaml holds the values.
GROUPS: dict[str, type] = {
    "backend": BackendConfig,
    "data": DataConfig,
    "cluster": ClusterConfig,
    "tracking": TrackingConfig,
    "profile": ProfileConfig,
    "validation": ValidationConfig,
    "features": FeaturesConfig,
    "model": ModelConfig,
    "search": SearchConfig,
    "kpi": KpiConfig,
    "governance": GovernanceConfig,
    "deploy": DeployConfig,
    "monitor": MonitorConfig,
}


@dataclass
class Config:
    """One ``trident run``."""

    #: Master seed: splits, generators and models derive their seeds from it.
    seed: int = 0
    #: Where run folders go (runs/<run_id>/).
    runs_dir: str = "runs"
    #: Stop after this stage (e.g. "profile"); empty runs every stage.
    until: str = ""
    backend: BackendConfig = field(default_factory=BackendConfig)
    data: DataConfig = field(default_factory=DataConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    kpi: KpiConfig = field(default_factory=KpiConfig)
    governance: GovernanceConfig = field(default_factory=GovernanceConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    extra: dict[str, Any] = field(default_factory=dict)
