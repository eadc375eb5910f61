"""Config schema for this stage (registered by engine.config.schema)."""
from __future__ import annotations

from dataclasses import dataclass, field  # noqa: F401
from typing import Any, Optional  # noqa: F401


@dataclass
class FeaturesConfig:
    """Feature engineering (conf/features)."""

    enabled: bool = True
