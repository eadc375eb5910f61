"""Governance schema (conf/governance): which attributes are sensitive and what the gates demand."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GovernanceConfig:
    """Sensitive attributes never enter the features; names match columns case-insensitively."""

    enabled: bool = True
    #: Columns treated as sensitive (absent ones are ignored and noted in the run record).
    sensitive: list[str] = field(default_factory=lambda: ["gender", "sex", "age", "marital", "race",
                                                          "ethnicity", "religion"])
    #: Flag a feature as a proxy of a sensitive attribute when their association exceeds this (Cramér's V
    #: or |correlation|).
    proxy_threshold: float = 0.7
    #: Drop detected proxies from the features too.
    drop_proxies: bool = True
