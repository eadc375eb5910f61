"""Data: ingest (pyarrow), the synthetic credit-default generator, column kinds, the data contract
(validation and quarantine) and profiling.

Modules, in the order a run uses them:

- :mod:`engine.data.synthetic` -- ``make_credit(rows, seed, drifted=False)``, the built-in default data;
- :mod:`engine.data.ingest` -- ``read_table(cfg.data)`` for synthetic, CSV, Parquet and partitioned Parquet;
- :mod:`engine.data.kinds` -- column kinds (numeric, categorical, datetime, text, id, target) and converters;
- :mod:`engine.data.target` -- the target's task, positive label and encoding;
- :mod:`engine.data.contract` -- ``infer_contract`` and ``check`` (dataset- and row-level failures);
- :mod:`engine.data.quarantine` -- the quarantine table of failing rows with their reasons;
- :mod:`engine.data.stage` -- the ``ingest`` and ``validate`` pipeline stages.

The names below are imported on first use, so ``import engine.data`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "make_credit": "engine.data.synthetic",
    "read_table": "engine.data.ingest",
    "read_csv": "engine.data.ingest",
    "read_parquet": "engine.data.ingest",
    "infer_kinds": "engine.data.kinds",
    "infer_contract": "engine.data.contract",
    "check": "engine.data.contract",
    "Contract": "engine.data.contract",
    "CheckResult": "engine.data.contract",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'engine.data' has no attribute {name!r}")
