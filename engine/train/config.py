"""Config schema for this stage (registered by engine.config.schema)."""
from __future__ import annotations

from dataclasses import dataclass, field  # noqa: F401
from typing import Any, Optional  # noqa: F401


@dataclass
class ModelConfig:
    """Candidate models (conf/model)."""

    enabled: bool = True


@dataclass
class SearchConfig:
    """Hyper-parameter search (conf/search)."""

    enabled: bool = True
