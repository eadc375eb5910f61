"""Config schema for this stage (registered by engine.config.schema)."""
from __future__ import annotations

from dataclasses import dataclass, field  # noqa: F401
from typing import Any, Optional  # noqa: F401


@dataclass
class DeployConfig:
    """Export, serving and deployment gates (conf/deploy)."""

    enabled: bool = True
