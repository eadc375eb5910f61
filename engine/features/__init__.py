"""Feature engineering: fitted transforms (impute, clip, scale, encode, hash, dates, derive, select,
reduce) applied by a NumPy-only runtime that is also what the served model runs.

``FeaturePipeline`` fits (a pandas frame in memory, or a Dask DataFrame as per-partition statistics
merged once: ``fit_dask``); ``FeatureRuntime`` applies (NumPy / CuPy arrays in, or per Dask partition). Importing
this package is cheap: pandas, Numba and Dask load only when used.
"""
from __future__ import annotations

from typing import Any

__all__ = ["FeaturePipeline", "FeatureRuntime", "FeaturesConfig"]


def __getattr__(name: str) -> Any:
    if name == "FeaturePipeline":
        from engine.features.pipeline import FeaturePipeline

        return FeaturePipeline
    if name == "FeatureRuntime":
        from engine.features.runtime import FeatureRuntime

        return FeatureRuntime
    if name == "FeaturesConfig":
        from engine.features.config import FeaturesConfig

        return FeaturesConfig
    raise AttributeError(f"module 'engine.features' has no attribute {name!r}")
