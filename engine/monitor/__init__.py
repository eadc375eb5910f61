"""Monitoring: drift statistics of new data against a reference sketch.

``fit_reference(frame)`` sketches the reference once (bin edges, histograms, moments, category
counts, correlations); ``compare(sketch, data)`` returns a :class:`DriftReport` for every feature
from one pass of the fused kernels, on NumPy or CuPy, over a frame, chunks or Dask partitions.
Names resolve lazily so that importing the config schema stays light.
"""
from __future__ import annotations

from typing import Any

__all__ = ["DriftReport", "MonitorConfig", "ReferenceSketch", "compare", "fit_reference"]

_WHERE = {
    "DriftReport": "engine.monitor.report",
    "MonitorConfig": "engine.monitor.config",
    "ReferenceSketch": "engine.monitor.sketch",
    "fit_reference": "engine.monitor.sketch",
    "compare": "engine.monitor.drift",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'engine.monitor' has no attribute {name!r}")
