"""Stage ``reference``: sketch the training split so later data can be checked for drift.

The sketch (bin edges, histograms, moments, category frequencies, correlations; JSON + NPZ) lands in
``runs/<run_id>/reference/``; ``trident monitor RUN --input FILE`` compares new data against it without
needing the training data again.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from engine import console

LOG = console.LOG
REFERENCE_DIR = "reference"


def monitor_config(cfg_monitor: Any) -> Any:
    """The ``monitor`` config node as the MonitorConfig dataclass the library expects."""
    from omegaconf import OmegaConf

    from engine.monitor.config import MonitorConfig

    if isinstance(cfg_monitor, MonitorConfig):
        return cfg_monitor
    node = OmegaConf.merge(OmegaConf.structured(MonitorConfig), cfg_monitor)
    return OmegaConf.to_object(node)


def reference_columns(kinds: dict[str, str]) -> tuple[list[str], list[str]]:
    """(numeric, categorical) raw columns worth watching: every feature input, sensitive ones included
    (their drift matters for fairness monitoring even though the model never sees them)."""
    numeric = [c for c, k in kinds.items() if k == "numeric"]
    categorical = [c for c, k in kinds.items() if k == "categorical"]
    return numeric, categorical


def reference(ctx: Any) -> None:
    """Fit the reference sketch on the training split's raw columns and save it with the run."""
    from engine.monitor import fit_reference

    if not ctx.cfg.monitor.enabled:
        LOG.info("reference: monitoring disabled (monitor.enabled=false)")
        return
    frame = ctx.state["frame"]
    rows = np.asarray(ctx.state["splits"]["train"], dtype=np.int64)
    numeric, categorical = reference_columns(dict(ctx.state.get("kinds") or {}))
    train = frame.iloc[rows].reset_index(drop=True)
    mcfg = monitor_config(ctx.cfg.monitor)
    # Very high-cardinality columns (ids, employers) make PSI / chi-square noise on ordinary samples.
    wide = [c for c in categorical if train[c].nunique(dropna=True) > int(mcfg.reference_max_levels)]
    categorical = [c for c in categorical if c not in wide]
    sketch = fit_reference(train, numeric=numeric, categorical=categorical, config=mcfg)
    if wide:
        sketch.skipped.update({c: f"more than monitor.reference_max_levels={mcfg.reference_max_levels} levels" for c in wide})
    sketch.save(ctx.path(REFERENCE_DIR))
    ctx.record_dir(REFERENCE_DIR)
    ctx.state["reference"] = sketch
    LOG.info("reference: sketched %d numeric and %d categorical columns of %d training rows%s", len(sketch.numeric),
             len(sketch.categorical), len(rows),
             f" (skipped: {', '.join(sketch.skipped)})" if sketch.skipped else "")
