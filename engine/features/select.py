"""Decide at fit which candidate features to drop: constant, duplicate, highly correlated.

Screening runs on a seeded sample of the training rows (all rows when the training set is no larger
than ``sample_rows``). A feature constant or equal to another on the sample is only a suspect: the
decision is confirmed on every training row, so no feature is dropped for being constant or a
duplicate unless it is one. Correlation is judged on at most :data:`CORRELATION_ROWS` evenly spaced
rows of the sample (Pearson's r; the later feature of a pair with ``|r| > correlation_threshold`` goes,
earlier ones stay).

The confirmation asks a :class:`FullData` two questions (each column's minimum, maximum and first
value; whether pairs of columns are equal on every row), which a partitioned fit answers with
per-partition reductions merged once instead of materialising the columns.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


#: At most this many (evenly spaced) screening rows estimate the correlations: the standard error of
#: r is about (1 - r**2) / sqrt(rows), i.e. 3e-4 near |r| = 0.98.
CORRELATION_ROWS = 20000


def gram(a: np.ndarray) -> np.ndarray:
    """``a.T @ a`` on one BLAS thread: for these small products, threads only add overhead (and on a
    busy machine OpenBLAS' spinning threads made it 100x slower)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        return a.T @ a
    with threadpool_limits(1, user_api="blas"):
        return a.T @ a


@dataclass(frozen=True)
class Drop:
    reason: str  # constant | duplicate | correlated
    detail: str


class FullData(Protocol):
    """Answers about candidate features over every training row (not just the screening sample)."""

    def extremes(self, cols: list[int]) -> dict[int, tuple[float, float, float]]:
        """``{j: (min, max, first value)}`` of each column ``j`` over every training row."""
        ...

    def equal(self, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], bool]:
        """``{(i, j): columns i and j are equal on every training row}``."""
        ...


class FullColumns:
    """:class:`FullData` from a function that materialises whole columns (the in-memory fit).

    Parameters
    ----------
    full_columns : callable
        ``full_columns([j, ...]) -> {j: column over all training rows}`` (NumPy or CuPy arrays).
    """

    def __init__(self, full_columns: Callable[[list[int]], dict[int, np.ndarray]]) -> None:
        self.full_columns = full_columns

    def extremes(self, cols: list[int]) -> dict[int, tuple[float, float, float]]:
        full = self.full_columns(cols)
        return {j: (float(col.min()), float(col.max()), float(col[0])) for j, col in full.items()}

    def equal(self, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], bool]:
        full = self.full_columns(sorted({j for p in pairs for j in p}))  # NumPy or CuPy columns
        return {(i, j): bool((full[i] == full[j]).all()) for i, j in pairs}


def screen(X: np.ndarray, names: list[str], *, drop_constant: bool, drop_duplicates: bool,
           correlation_threshold: float | None,
           full_columns: Callable[[list[int]], dict[int, np.ndarray]] | None = None,
           full: FullData | None = None) -> dict[int, Drop]:
    """Features to drop, by candidate index.

    Parameters
    ----------
    X : (rows, features) float32
        Candidate features on the screening rows.
    names : list of str
        Feature names (used in the reasons).
    full_columns : callable, optional
        ``full_columns([j, ...]) -> {j: column over all training rows}``; ``None`` when ``X`` already
        holds every training row.
    full : FullData, optional
        Confirms the suspects on every training row without materialising them (instead of
        ``full_columns``).
    """
    if full is None and full_columns is not None:
        full = FullColumns(full_columns)
    k = X.shape[1]
    drops: dict[int, Drop] = {}
    alive = list(range(k))
    if X.shape[0] == 0 or k == 0:
        return drops
    if drop_constant:
        suspects = [j for j in alive if X[:, j].min() == X[:, j].max()]
        ext = full.extremes(suspects) if (full is not None and suspects) else {}
        for j in suspects:
            lo, hi, first = ext.get(j) or (X[:, j].min(), X[:, j].max(), X[0, j])
            if lo == hi:
                drops[j] = Drop("constant", f"constant ({float(first):g})")
        alive = [j for j in alive if j not in drops]
    if drop_duplicates and len(alive) > 1:
        groups: dict[tuple[int, int], list[int]] = {}
        for j in alive:  # exact integer checksums of the bit patterns; equal columns share a key
            u = np.ascontiguousarray(X[:, j]).view(np.uint32).astype(np.uint64)
            key = (int(u.sum()), int((u * u).sum()))
            groups.setdefault(key, []).append(j)
        pairs = []
        for g in groups.values():
            for pos, j in enumerate(g[1:], start=1):
                first = next((i for i in g[:pos] if np.array_equal(X[:, i], X[:, j])), None)
                if first is not None:
                    pairs.append((first, j))
        if pairs:
            same = full.equal(pairs) if full is not None else {p: True for p in pairs}
            for i, j in pairs:
                if same[(i, j)]:
                    drops[j] = Drop("duplicate", f"duplicate of {names[i]}")
        alive = [j for j in alive if j not in drops]
    if correlation_threshold is not None and len(alive) > 1 and X.shape[0] > 2:
        step = -(-X.shape[0] // CORRELATION_ROWS)  # evenly spaced rows of the sample
        sub = X[::step, alive].astype(np.float32)  # float32 keeps the Gram product fast
        sub -= sub.mean(axis=0, dtype=np.float64).astype(np.float32)
        sd = np.sqrt((sub * sub).mean(axis=0, dtype=np.float64))
        ok = sd > 0
        sub[:, ok] /= sd[ok].astype(np.float32)
        corr = gram(sub).astype(np.float64) / sub.shape[0]
        kept: list[int] = []
        for a, j in enumerate(alive):
            if not ok[a]:
                kept.append(a)
                continue
            hit = next((b for b in kept if ok[b] and abs(corr[b, a]) > correlation_threshold), None)
            if hit is None:
                kept.append(a)
            else:
                drops[j] = Drop("correlated", f"correlated with {names[alive[hit]]} (r={corr[hit, a]:.3f})")
    return drops
