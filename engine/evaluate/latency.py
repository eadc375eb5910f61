"""Batch-prediction latency of a fitted estimator, per 1,000 rows (the ``max_latency_ms_per_1000`` KPI)."""
from __future__ import annotations

import time
from typing import Any


def predict_fn(estimator: Any, task: str) -> Any:
    """The call a served model makes: ``predict_proba`` for a binary task, ``predict`` for regression."""
    return estimator.predict_proba if task == "binary" else estimator.predict


def latency_ms_per_1000(estimator: Any, X: Any, task: str, rows: int = 1000, repeats: int = 3) -> float:
    """Milliseconds to score a batch of ``rows`` rows of ``X`` (best of ``repeats``, after one warm-up),
    scaled to 1,000 rows. ``X`` is repeated when it has fewer than ``rows`` rows."""
    n = int(X.shape[0])
    if n == 0:
        raise ValueError("cannot time predictions on zero rows")
    if n < rows:
        from engine.backend import get_namespace

        X = get_namespace(X).concatenate([X] * (rows // n + 1))
    batch = X[:rows]
    fn = predict_fn(estimator, task)
    fn(batch)
    best = float("inf")
    for _ in range(max(int(repeats), 1)):
        t0 = time.perf_counter()
        out = fn(batch)
        _sync(out)
        best = min(best, time.perf_counter() - t0)
    return best * 1000.0 * (1000.0 / rows)


def _sync(out: Any) -> None:
    """Wait for a device result (CuPy / cuML outputs are asynchronous)."""
    if type(out).__module__.startswith("cupy"):
        import cupy

        cupy.cuda.get_current_stream().synchronize()
