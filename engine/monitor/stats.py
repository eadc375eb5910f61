"""Mergeable statistics of a block of rows against fixed bins and category vocabularies.

:func:`collect` reads data (a table, chunks or a Dask DataFrame), runs the fused kernels on each
block of at most ``chunk_rows`` rows (NumPy or CuPy, whichever the data lives on) and merges the
per-block :class:`PartialStats`. Only small arrays leave the device: histograms, moments, counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import DataError
from engine.monitor.frames import Table, is_dask, iter_tables

__all__ = ["PartialStats", "StatsSpec", "collect", "cross_moments", "encode_categorical"]

#: Blocks of data already on the GPU hold at least this many rows.
GPU_MIN_CHUNK_ROWS = 1 << 23


@dataclass(frozen=True)
class StatsSpec:
    """What to compute: numeric columns with their edges and shift, categorical columns with their
    known categories."""

    numeric: list[str]
    edges: np.ndarray  # (features, max_bins + 1), NaN padded
    shift: np.ndarray  # (features,)
    categorical: list[str]
    vocab: list[Any]  # one pandas Index of known categories per categorical column
    correlation: bool = True
    keep_values: bool = False
    #: Stop tracking unseen categories of a column past this many (None: no limit).
    max_new: int | None = None
    matrix_names: list[str] | None = None


@dataclass
class PartialStats:
    """Statistics of a set of rows; :meth:`merge` gives those of the union of disjoint sets."""

    n_rows: int
    numeric: Any  # kernels.binned_stats.BinnedStats (NumPy) or None
    cross: dict[str, np.ndarray] | None
    cat_counts: list[np.ndarray]
    cat_missing: np.ndarray
    #: Per categorical column: {value: count} of values outside the vocabulary, or None once more
    #: than ``max_new`` distinct ones were seen.
    cat_new: list[dict[Any, int] | None]
    values: list[list[np.ndarray]] | None = field(default=None)

    def merge(self, other: "PartialStats") -> "PartialStats":
        numeric = self.numeric.merge(other.numeric) if self.numeric is not None else None
        cross = None
        if self.cross is not None and other.cross is not None:
            cross = {k: self.cross[k] + other.cross[k] for k in self.cross}
        cat_new: list[dict[Any, int] | None] = []
        for a, b in zip(self.cat_new, other.cat_new):
            if a is None or b is None:
                cat_new.append(None)
                continue
            d = dict(a)
            for k, v in b.items():
                d[k] = d.get(k, 0) + v
            cat_new.append(d)
        values = None
        if self.values is not None and other.values is not None:
            values = [a + b for a, b in zip(self.values, other.values)]
        return PartialStats(
            self.n_rows + other.n_rows,
            numeric,
            cross,
            [a + b for a, b in zip(self.cat_counts, other.cat_counts)],
            self.cat_missing + other.cat_missing,
            cat_new,
            values,
        )


# ------------------------------------------------------------------------------------ categoricals
def _python_scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def encode_categorical(values: Any, vocab: Any) -> tuple[Any, list[Any]]:
    """Codes of ``values`` against ``vocab`` (a pandas Index), unseen values appended after it.

    Returns ``(codes, unseen)``: int32 codes in the values' namespace (-1 for missing; ``len(vocab)
    + i`` for ``unseen[i]``) and the unseen values as Python scalars in order of first appearance.
    """
    import pandas as pd

    mod = type(values).__module__
    if mod.startswith("cudf"):
        import cupy

        codes, uniques = values.factorize()
        uniques = uniques.to_pandas() if hasattr(uniques, "to_pandas") else pd.Index(uniques)
        lut, unseen = _lookup(uniques, vocab)
        return cupy.asarray(lut)[cupy.asarray(codes)], unseen
    if mod.startswith("cupy"):
        import cupy

        uniques, inverse = cupy.unique(values, return_inverse=True)
        host = pd.Index(uniques.get())
        lut, unseen = _lookup(host, vocab, nan_is_missing=True)
        return cupy.asarray(lut)[inverse.reshape(-1)], unseen
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lut, unseen = _lookup(pd.Index(uniques), vocab)
    return lut[codes], unseen


#: Up to this many distinct values a block, they are looked up in a dict of the vocabulary (built once
#: per vocabulary): ten times faster than ``Index.get_indexer`` for the few values of a small batch.
DICT_LOOKUP_MAX = 4096
_POSITIONS: dict[int, tuple[Any, dict[Any, int]]] = {}


def _positions(vocab: Any) -> dict[Any, int]:
    """``{category: position}`` of a vocabulary Index, cached while the Index lives (held here)."""
    hit = _POSITIONS.get(id(vocab))
    if hit is None or hit[0] is not vocab:
        if len(_POSITIONS) >= 64:
            _POSITIONS.clear()
        hit = _POSITIONS[id(vocab)] = (vocab, {v: i for i, v in enumerate(vocab.tolist())})
    return hit[1]


def _lookup(uniques: Any, vocab: Any, nan_is_missing: bool = False) -> tuple[np.ndarray, list[Any]]:
    """Map each unique value to its vocabulary position (or a new one); the last entry maps -1 to -1."""
    if not len(vocab):
        idx = np.full(len(uniques), -1, np.int64)
    elif len(uniques) <= DICT_LOOKUP_MAX and (vocab.dtype == object or str(vocab.dtype) == "str"):
        pos = _positions(vocab)
        idx = np.fromiter((pos.get(v, -1) for v in uniques.tolist()), np.int64, len(uniques))
    else:
        idx = np.asarray(vocab.get_indexer(uniques), dtype=np.int64)
    missing = np.zeros(len(uniques), bool)
    if nan_is_missing and len(uniques):
        missing = np.asarray(_isna(uniques))
    new = (idx < 0) & ~missing
    unseen = [_python_scalar(v) for v in np.asarray(uniques, dtype=object)[new]]
    idx[new] = len(vocab) + np.arange(int(new.sum()))
    idx[missing] = -1
    return np.append(idx, -1).astype(np.int32), unseen


def _isna(values: Any) -> Any:
    import pandas as pd

    return pd.isna(values)


# --------------------------------------------------------------------------------- cross moments
def cross_moments(x: Any, shift: np.ndarray, missing: np.ndarray) -> dict[str, np.ndarray]:
    """Pairwise sums for correlations of ``x - shift`` over pairwise-complete rows (NumPy or CuPy).

    ``p = X0' X0`` with missing values as 0; for each column ``b`` that has missing values,
    ``sm[:, b]``, ``qm[:, b]``, ``nm[:, b]`` are the sum, sum of squares and count of every column
    over the rows where ``b`` is missing (only those rows are read again). ``p`` runs in the data's
    precision (float32 for float32 data, about 1e-6 relative per block); blocks add up in float64. On the CPU the products run
    on one BLAS thread: these are tall, narrow products, and BLAS threads that spin while waiting
    for a busy core made them up to 50x slower.
    """
    from engine.backend import get_namespace

    xp = get_namespace(x)
    if xp is np:
        with _one_blas_thread():
            return _cross_moments(x, shift, missing, xp)
    return _cross_moments(x, shift, missing, xp)


def _one_blas_thread() -> Any:
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


_BLAS: Any = None


def _cross_moments(x: Any, shift: np.ndarray, missing: np.ndarray, xp: Any) -> dict[str, np.ndarray]:
    from engine.backend import to_numpy

    n, f = x.shape
    x0 = x - xp.asarray(shift, dtype=x.dtype)
    out = {k: np.zeros((f, f)) for k in ("p", "sm", "qm", "nm")}
    holes = []
    for b in np.flatnonzero(np.asarray(missing) > 0):
        rows = xp.flatnonzero(xp.isnan(x0[:, b]))  # usually few: only these rows are read again
        blk = x0[rows]
        present = ~xp.isnan(blk)
        blk = xp.where(present, blk, 0)
        out["sm"][:, b] = to_numpy(blk.sum(axis=0, dtype=np.float64))
        out["qm"][:, b] = to_numpy((blk * blk).sum(axis=0, dtype=np.float64))
        out["nm"][:, b] = to_numpy(present.sum(axis=0))
        holes.append((b, rows))
    for b, rows in holes:
        x0[rows, b] = 0
    out["p"] = to_numpy(x0.T @ x0).astype(np.float64)
    return out


# -------------------------------------------------------------------------------------- one block
def block_stats(table: Table, start: int, stop: int, spec: StatsSpec) -> PartialStats:
    """Statistics of rows ``start:stop`` of one table."""
    from engine.backend import to_numpy
    from kernels.binned_stats import binned_stats
    from kernels.category_counts import category_counts

    numeric = cross = values = None
    if spec.numeric:
        x = table.numeric(spec.numeric, start, stop)
        numeric = binned_stats(x, spec.edges, spec.shift).to_numpy()
        if spec.correlation and len(spec.numeric) > 1:
            cross = cross_moments(x, spec.shift, numeric.missing)
        if spec.keep_values:
            values = []
            for j in range(x.shape[1]):
                v = to_numpy(x[:, j]).astype(np.float64)
                values.append([v[~np.isnan(v)]])
    nc = len(spec.categorical)
    cat_counts: list[np.ndarray] = []
    cat_new: list[dict[Any, int] | None] = []
    cat_missing = np.zeros(nc, np.int64)
    if nc:
        xp = table.xp
        codes = xp.empty((stop - start, nc), dtype=np.int32, order="F")
        unseen_all = []
        for j, name in enumerate(spec.categorical):
            c, unseen = encode_categorical(table.column(name, start, stop), spec.vocab[j])
            codes[:, j] = c
            unseen_all.append(unseen)
        ncat = np.array([len(v) + len(u) for v, u in zip(spec.vocab, unseen_all)], np.int64)
        cc = category_counts(codes, np.maximum(ncat, 1)).to_numpy()
        cat_missing = cc.missing.astype(np.int64)
        for j, (voc, unseen) in enumerate(zip(spec.vocab, unseen_all)):
            k = len(voc)
            cat_counts.append(cc.counts[j, :k].copy())
            new = {u: int(c) for u, c in zip(unseen, cc.counts[j, k : k + len(unseen)])}
            cat_new.append(None if spec.max_new is not None and len(new) > spec.max_new else new)
    return PartialStats(stop - start, numeric, cross, cat_counts, cat_missing, cat_new, values)


def empty_stats(spec: StatsSpec) -> PartialStats:
    from kernels.binned_stats import BinnedStats

    numeric = cross = values = None
    f = len(spec.numeric)
    if f:
        width = spec.edges.shape[1] - 1
        numeric = BinnedStats(
            np.zeros((f, max(width, 1)), np.int64), np.zeros(f, np.int64), np.full(f, np.inf), np.full(f, -np.inf),
            np.zeros(f), np.zeros(f), np.asarray(spec.shift, np.float64), 0,
        )
        if spec.correlation and f > 1:
            cross = {k: np.zeros((f, f)) for k in ("p", "sm", "qm", "nm")}
        if spec.keep_values:
            values = [[] for _ in range(f)]
    nc = len(spec.categorical)
    return PartialStats(
        0, numeric, cross, [np.zeros(len(v), np.int64) for v in spec.vocab], np.zeros(nc, np.int64),
        [{} for _ in range(nc)], values,
    )


def _table_stats(table: Table, spec: StatsSpec, chunk_rows: int) -> PartialStats:
    table.require(spec.numeric, "numeric")
    table.require(spec.categorical, "categorical")
    acc = empty_stats(spec)
    if table.on_gpu:  # device memory is plentiful and each block costs a host round trip
        chunk_rows = max(chunk_rows, GPU_MIN_CHUNK_ROWS)
    for a, b in table.slices(chunk_rows):
        acc = acc.merge(block_stats(table, a, b, spec))
    return acc


def _partition_stats(part: Any, spec: StatsSpec, chunk_rows: int) -> PartialStats:
    return _table_stats(Table(part, spec.matrix_names), spec, chunk_rows)


def collect(data: Any, spec: StatsSpec, chunk_rows: int) -> PartialStats:
    """Merged statistics of all rows of ``data`` (a table, an iterable of tables or a Dask DataFrame).

    A Dask DataFrame is reduced per partition with ``dask.compute`` (on the active client if any,
    else in-process) and the partition statistics merged here.
    """
    if is_dask(data):
        import dask

        tasks = [dask.delayed(_partition_stats)(p, spec, chunk_rows) for p in data.to_delayed()]
        parts = dask.compute(*tasks)
        acc = empty_stats(spec)
        for p in parts:
            acc = acc.merge(p)
        return acc
    acc = empty_stats(spec)
    seen = False
    for table in iter_tables(data, spec.matrix_names):
        seen = True
        acc = acc.merge(_table_stats(table, spec, chunk_rows))
    if not seen:
        raise DataError("no data: the iterable of chunks was empty")
    return acc
