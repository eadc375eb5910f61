"""Hydra configuration: structured schemas, registration and composition.

Schemas are dataclasses (one module per group); values live in ``conf/<group>/<option>.yaml``.
``compose(overrides)`` returns a validated :class:`omegaconf.DictConfig`; any wrong key, type or value
raises :class:`engine.errors.ConfigError` with a one-line message naming the key.
"""
from __future__ import annotations

from engine.config.loader import compose, conf_dir, expand_sweep, register_configs, to_container

__all__ = ["compose", "conf_dir", "expand_sweep", "register_configs", "to_container"]
