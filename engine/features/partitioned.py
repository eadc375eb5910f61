"""Fit the feature pipeline on a Dask DataFrame: per-partition statistics merged once.

:class:`PartitionedRows` answers the questions a fit asks about every training row
(:class:`engine.features.pipeline.FullStats`) with Dask tasks, one per partition, whose small results
are merged on the client. The frame itself never comes to the client; only the seeded sample of
``sample_rows`` rows does (every row when there are no more), as prepared columns.

Passes (each is one ``dask.compute`` on the current scheduler)
--------------------------------------------------------------
1. Rows per partition (hence the global position of every row) and, for string columns whose kind
   is not declared, whether a partition repeats a value (an identifier column never does; only a
   column no partition repeats is counted distinct across partitions).
2. Per partition: missing rows of every numeric column, datetime column and derived feature; whether
   a datetime has a time of day; each categorical column's :class:`LevelStats` (level counts, and
   rows and target sums per fold and level when the column may be target-encoded); the target's
   per-fold totals; the prepared columns of the partition's sample rows and their folds.
3. Only when the screening sample finds constant or duplicate suspects: their minimum, maximum and
   first value, or their equality, on every row (one pass per question).

The training matrix of :meth:`PartitionedRows.train_matrix` is one task per partition: the fitted
runtime's transform plus the out-of-fold target encoding, which needs only the partition's rows, their
slice of the global fold ids and the merged per-fold sums.

The target-encoding folds are :func:`engine.features.categorical.fold_ids` of the whole training set
(a seeded permutation), computed once by one task (int8 per row for up to 127 folds) and sliced per
partition, so every row lands in the same fold as in the in-memory fit.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from engine.errors import DataError
from engine.features import runtime as rt
from engine.features.categorical import (CategoricalFit, LevelStats, TargetTotals, fit_categorical_stats, level_counts,
                                         may_be_target)
from engine.features.frame import infer_kind


# ------------------------------------------------------------------------------ partition tasks
def _prepare_partition(pdf: Any, candidates: list[tuple[str, str]]) -> dict[str, Any]:
    """The runtime's prepared columns of one partition (as the in-memory fit prepares its frame)."""
    from engine.features.frame import to_columns

    if type(pdf).__module__.startswith("cudf"):  # statistics are host code, as in FeaturePipeline.transform
        pdf = pdf.to_pandas()
    columns = to_columns(pdf, dict(candidates))
    try:
        prepared, _ = rt.prepare_columns(columns, candidates)
    except rt.FeatureInputError as exc:
        raise DataError(str(exc)) from None
    return prepared


def _locally_unique(s: Any) -> bool:
    """Whether a Series has no missing and no repeated value (the first 1,000 rows checked first)."""
    head = s.iloc[: min(len(s), 1000)]
    if head.nunique(dropna=True) < len(head):
        return False
    return bool(s.nunique(dropna=True) == len(s))


def _count_rows(pdf: Any, id_columns: list[str]) -> tuple[int, dict[str, bool]]:
    if id_columns and type(pdf).__module__.startswith("cudf"):
        pdf = pdf[id_columns].to_pandas()
    return len(pdf), {c: _locally_unique(pdf[c]) for c in id_columns}


def _target_values(piece: Any) -> np.ndarray:
    """One piece of the target as float64, checked like the in-memory fit checks its target."""
    try:
        a = np.asarray(piece, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError("features: the target y must be numeric (0/1 for binary, float for regression)") from None
    if not np.isfinite(a).all():
        raise DataError("features: the target y has missing or infinite values")
    return a


def _target_slices(*pieces: Any, bounds: list[tuple[int, int]]) -> np.ndarray:
    """Concatenate ``piece[a:b]`` of each target piece (a partition's rows across the pieces)."""
    return np.concatenate([_target_values(p)[a:b] for p, (a, b) in zip(pieces, bounds)])


def _fold_ids_compact(n: int, k: int, seed: int, block: int = 1 << 22) -> np.ndarray:
    """:func:`engine.features.categorical.fold_ids` in the smallest integer type (int8 up to 127
    folds), dealt in blocks: the permutation (8 bytes per row) is the only full-length temporary."""
    perm = np.random.default_rng(seed).permutation(n)
    folds = np.empty(n, dtype=np.int8 if k <= 127 else np.int16 if k <= 32767 else np.int32)
    for s in range(0, n, block):
        e = min(n, s + block)
        folds[perm[s:e]] = np.arange(s, e) % k
    return folds


def _slice(a: np.ndarray, start: int, stop: int) -> np.ndarray:
    return a[start:stop]


def _src_key(src: dict[str, Any]) -> tuple[str, ...]:
    """What a numeric step's missing rows depend on: a column (date parts: the datetime) or a pair."""
    op = src["op"]
    if op == "column":
        return ("column", src["column"])
    if op == "datepart":
        return ("datetime", src["column"])
    return (op, src["a"], src["b"])


def _partition_stats(pdf: Any, y: np.ndarray | None, folds: np.ndarray | None, sample: np.ndarray | None,
                     plan: dict[str, Any]) -> dict[str, Any]:
    """Pass 2 on one partition: mergeable statistics and the partition's sample rows."""
    from engine.features.pipeline import has_time_of_day

    cfg = plan["cfg"]
    candidates = plan["candidates"]
    prepared = _prepare_partition(pdf, candidates)
    n = len(pdf)
    if y is not None and y.shape[0] != n:
        raise DataError(f"features: a partition of the target y has {y.shape[0]} values for {n} rows")
    k = cfg.target_folds
    missing: dict[tuple[str, ...], int] = {}
    has_time: dict[str, bool] = {}
    levels: dict[str, LevelStats] = {}
    for c, kind in candidates:
        p = prepared[c]
        if kind == "numeric":
            missing[("column", c)] = int(np.count_nonzero(~np.isfinite(p)))
        elif kind == "datetime":
            missing[("datetime", c)] = int(np.count_nonzero(p == rt.NAT))
            has_time[c] = has_time_of_day(p)
        else:
            seen = int(np.count_nonzero(level_counts(p)[0]))  # a lower bound on the column's levels
            target = y is not None and may_be_target(c, seen, cfg)
            levels[c] = LevelStats.of_rows(p, y if target else None, folds if target else None, k)
    for src in plan["derived"]:
        x = rt.source_values(src, prepared, 0, n)
        missing[_src_key(src)] = int(np.count_nonzero(~np.isfinite(x)))
    out: dict[str, Any] = {"missing": missing, "has_time": has_time, "levels": levels, "totals": None,
                           "sample": None, "sample_folds": None}
    if y is not None and folds is not None:
        out["totals"] = TargetTotals.of_rows(y, folds, k)
    if sample is None or sample.shape[0]:
        out["sample"] = prepared if sample is None else rt.subset(prepared, sample)
        if folds is not None:
            out["sample_folds"] = folds if sample is None else folds[sample]
    return out


def _partition_matrix(pdf: Any, folds: np.ndarray | None, job: dict[str, Any]) -> np.ndarray:
    """The candidates of ``job["runtime"]`` on one partition, target-encoded columns out of fold."""
    from engine.features.pipeline import with_oof

    prepared = _prepare_partition(pdf, job["candidates"])
    runtime: rt.FeatureRuntime = job["runtime"]
    idx = job["idx"]
    X = runtime.transform_prepared(prepared, len(pdf), reduce=False)
    oof = {j: fit.out_of_fold(prepared[fit.column], folds, job["cfg"]).astype(np.float32)
           for j, fit in job["oof_fits"].items() if idx[j] >= 0}
    X = with_oof(X, idx, oof)
    if job.get("reduce") and runtime.reduce_spec["method"] != "none":
        X = runtime.apply_reduce(X)
    return X


def _partition_extremes(pdf: Any, folds: np.ndarray | None, job: dict[str, Any]) -> dict[int, tuple] | None:
    X = _partition_matrix(pdf, folds, job)
    if X.shape[0] == 0:
        return None
    idx = job["idx"]
    return {j: (X[:, idx[j]].min(), X[:, idx[j]].max(), X[0, idx[j]]) for j in job["cols"]}


def _partition_equal(pdf: Any, folds: np.ndarray | None, job: dict[str, Any]) -> dict[tuple[int, int], bool]:
    X = _partition_matrix(pdf, folds, job)
    idx = job["idx"]
    return {(i, j): bool(np.array_equal(X[:, idx[i]], X[:, idx[j]])) for i, j in job["pairs"]}


# ------------------------------------------------------------------------------ client side
def _concat_prepared(pieces: list[dict[str, Any]], candidates: list[tuple[str, str]]) -> dict[str, Any]:
    """Prepared columns of several row ranges, one after the other (dictionaries merged by text)."""
    out: dict[str, Any] = {}
    for c, kind in candidates:
        parts = [p[c] for p in pieces]
        if kind != "categorical":
            out[c] = np.concatenate(parts)
            continue
        index: dict[str, int] = {}
        codes = []
        for enc in parts:
            table = np.array([index.setdefault(str(v), len(index)) for v in enc.values.tolist()] + [-1], dtype=np.int64)
            codes.append(table[np.asarray(enc.codes)])
        values = np.empty(len(index), dtype=object)
        values[:] = list(index)
        out[c] = rt.Encoded(np.concatenate(codes), values)
    return out


def _target_pieces(y: Any) -> tuple[list[Any], list[int] | None, Any]:
    """The target as pieces in row order: (pieces, their lengths when known, dask lengths to compute)."""
    import dask
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(y, dd.DataFrame):
        raise DataError(f"features: the target y must be one column, got a Dask DataFrame with "
                        f"{len(y.columns)} columns")
    if isinstance(y, dd.Series):
        pieces = list(y.to_delayed())
        return pieces, None, [dask.delayed(len, pure=False)(p) for p in pieces]
    if isinstance(y, da.Array):
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"features: the target y must be 1-D, got a Dask array of shape {y.shape}")
        pieces = list(y.to_delayed().ravel())
        if all(np.isfinite(c) for c in y.chunks[0]):
            return pieces, [int(c) for c in y.chunks[0]], None
        return pieces, None, [dask.delayed(len, pure=False)(p) for p in pieces]
    from engine.features.pipeline import _check_target

    a = np.asarray(y)
    n = int(a.reshape(-1).shape[0]) if a.ndim else 1
    return [_check_target(a, n)], [n], None


class PartitionedRows:
    """:class:`engine.features.pipeline.FullStats` of a Dask DataFrame (see the module docstring).

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        Training rows.
    y : dask Series, dask array, array or None
        Target, row-aligned with ``ddf``.
    cfg : FeaturesConfig
    kinds : dict, optional
        Declared column kinds; the others are inferred from the dtypes (and, for strings, the id check).

    Attributes
    ----------
    n, n_partitions : int
        Training rows and partitions.
    lengths : list of int
        Rows per partition.
    meta : pandas.DataFrame
        The frame's empty schema.
    kinds : dict
        Every column's kind.
    """

    def __init__(self, ddf: Any, y: Any, cfg: Any, kinds: dict[str, str] | None = None) -> None:
        import dask
        import dask.dataframe as dd
        import pandas as pd

        from engine.features.pipeline import _check_column_names

        if not isinstance(ddf, dd.DataFrame):
            raise DataError(f"features: fit_dask expects a dask.dataframe.DataFrame, got "
                            f"{type(ddf).__module__}.{type(ddf).__name__}")
        self.cfg = cfg
        meta = ddf._meta
        self.meta = meta.to_pandas() if type(meta).__module__.startswith("cudf") else meta
        _check_column_names(self.meta.columns)
        self.parts = list(ddf.to_delayed())
        self.n_partitions = len(self.parts)
        kinds = dict(kinds or {})
        id_columns = [c for c in self.meta.columns
                      if c not in kinds and infer_kind(self.meta[c], cfg.id_min_rows) == "categorical"
                      and not isinstance(self.meta[c].dtype, pd.CategoricalDtype)]
        counted = [dask.delayed(_count_rows, pure=False)(p, id_columns) for p in self.parts]
        y_pieces: list[Any] = []
        y_lengths: list[int] | None = None
        y_count: Any = None
        if y is not None:
            y_pieces, y_lengths, y_count = _target_pieces(y)
        got = dask.compute(counted, y_count)
        self.lengths = [int(r[0]) for r in got[0]]
        self.n = sum(self.lengths)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        if self.n == 0:
            raise DataError("features: cannot fit on an empty frame")
        self.kinds = self._kinds(ddf, kinds, id_columns, [r[1] for r in got[0]])
        self.y_parts: list[Any] | None = None
        self.fold_parts: list[Any] = [None] * self.n_partitions
        if y is not None:
            y_lengths = y_lengths if y_lengths is not None else [int(v) for v in got[1]]
            n_y = sum(y_lengths)
            if n_y != self.n:
                raise DataError(f"features: the target y has {n_y} values for {self.n} rows")
            self.y_parts = self._align(y_pieces, y_lengths)
            folds = dask.delayed(_fold_ids_compact, pure=False)(self.n, cfg.target_folds, cfg.seed)
            self.fold_parts = [dask.delayed(_slice, pure=False)(folds, int(a), int(b))
                               for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    # ------------------------------------------------------------------------------ setup
    def _kinds(self, ddf: Any, kinds: dict[str, Any], id_columns: list[str],
               unique: list[dict[str, bool]]) -> dict[str, Any]:
        """Every column's kind, as :func:`engine.features.frame.infer_kinds` gives on the whole frame."""
        import dask

        out = dict(kinds)
        maybe_id = [c for c in id_columns if self.n >= self.cfg.id_min_rows and all(u[c] for u in unique)]
        distinct = dict(zip(maybe_id, dask.compute(*[ddf[c].nunique(dropna=True) for c in maybe_id])))
        for c in self.meta.columns:
            if c in out:
                continue
            out[c] = "id" if distinct.get(c) == self.n else infer_kind(self.meta[c], self.cfg.id_min_rows)
        return out

    def _align(self, pieces: list[Any], lengths: list[int]) -> list[Any]:
        """The target cut at the partition boundaries: one (lazy) float64 array per partition."""
        import dask

        if len(pieces) == 1 and isinstance(pieces[0], np.ndarray):  # in memory already: slice it here
            return [pieces[0][a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:])]
        if lengths == self.lengths:
            return [dask.delayed(_target_values, pure=False)(p) for p in pieces]
        starts = np.concatenate([[0], np.cumsum(lengths)])
        out = []
        for a, b in zip(self.offsets[:-1], self.offsets[1:]):
            use = [i for i in range(len(pieces)) if starts[i] < b and starts[i + 1] > a and lengths[i]]
            bounds = [(int(max(a, starts[i]) - starts[i]), int(min(b, starts[i + 1]) - starts[i])) for i in use]
            if not use:
                out.append(np.zeros(0, dtype=np.float64))
            else:
                out.append(dask.delayed(_target_slices, pure=False)(*[pieces[i] for i in use], bounds=bounds))
        return out

    # ------------------------------------------------------------------------- FullStats
    def load(self, candidates: list[tuple[str, str]], derive_ok: list, sample: np.ndarray | None) -> None:
        """Pass 2: merge the per-partition statistics and gather the sample rows."""
        import dask

        self.candidates = candidates
        self.sample_positions = sample
        derived = [{"op": d.op.value, "a": d.a, "b": d.b} for d in derive_ok]
        plan = dask.delayed({"cfg": self.cfg, "candidates": candidates, "derived": derived}, pure=False,
                            traverse=False)
        tasks = []
        for i, part in enumerate(self.parts):
            local = None
            if sample is not None:
                a, b = self.offsets[i], self.offsets[i + 1]
                local = sample[(sample >= a) & (sample < b)] - a
            y_i = self.y_parts[i] if self.y_parts is not None else None
            tasks.append(dask.delayed(_partition_stats, pure=False)(part, y_i, self.fold_parts[i], local, plan))
        stats = dask.compute(*tasks)
        self.missing: dict[tuple[str, ...], int] = {}
        self.time: dict[str, bool] = {}
        for s in stats:
            for key, v in s["missing"].items():
                self.missing[key] = self.missing.get(key, 0) + v
            for c, v in s["has_time"].items():
                self.time[c] = self.time.get(c, False) or v
        self.levels = {c: LevelStats.merge([s["levels"][c] for s in stats])
                       for c, k in candidates if k == "categorical"}
        self.totals = TargetTotals.merge([s["totals"] for s in stats]) if self.y_parts is not None else None
        pieces = [s for s in stats if s["sample"] is not None]
        self.prepared_s = _concat_prepared([s["sample"] for s in pieces], candidates)
        self.folds_s = (np.concatenate([s["sample_folds"] for s in pieces]) if self.y_parts is not None else None)
        self.m = self.n if sample is None else int(sample.shape[0])

    def sample(self) -> tuple[dict[str, Any], int]:
        return self.prepared_s, self.m

    def has_time(self, column: str) -> bool:
        return self.time[column]

    def missing_rows(self, src: dict[str, Any]) -> int:
        return self.missing[_src_key(src)]

    def categorical(self, column: str) -> CategoricalFit:
        return fit_categorical_stats(column, self.levels[column], self.cfg, self.totals)

    def sample_oof(self, fit: CategoricalFit) -> np.ndarray:
        assert self.folds_s is not None
        return fit.out_of_fold(self.prepared_s[fit.column], self.folds_s, self.cfg).astype(np.float32)

    def full(self, runtime_for: Any, n_candidates: int, oof_fits: dict[int, CategoricalFit]) -> "_PartitionedFull":
        return _PartitionedFull(self, runtime_for, n_candidates, oof_fits)

    # ------------------------------------------------------------------------------ apply
    def _job(self, runtime: rt.FeatureRuntime, idx: np.ndarray, oof_fits: dict[int, CategoricalFit],
             **extra: Any) -> Any:
        import dask

        job = {"runtime": runtime, "idx": idx, "cfg": self.cfg, "candidates": self.candidates,
               "oof_fits": {j: f for j, f in oof_fits.items() if idx[j] >= 0}, **extra}
        return dask.delayed(job, pure=False, traverse=False)

    def map(self, fn: Any, job: Any) -> list[Any]:
        """``fn(partition, folds, job)`` for every partition, as Dask tasks."""
        import dask

        return [dask.delayed(fn, pure=False)(p, f, job) for p, f in zip(self.parts, self.fold_parts)]

    def train_matrix(self, runtime: rt.FeatureRuntime, idx: np.ndarray, oof_fits: dict[int, CategoricalFit]) -> Any:
        """The training rows' features: a lazy float32 Dask array, one chunk per partition."""
        import dask.array as da

        job = self._job(runtime, idx, oof_fits, reduce=True)
        k = runtime.n_features
        blocks = [da.from_delayed(t, shape=(n, k), dtype=np.float32)
                  for t, n in zip(self.map(_partition_matrix, job), self.lengths)]
        return da.concatenate(blocks, axis=0)


class _PartitionedFull:
    """:class:`engine.features.select.FullData` answered by per-partition reductions (pass 3)."""

    def __init__(self, rows: PartitionedRows, runtime_for: Any, n_candidates: int,
                 oof_fits: dict[int, CategoricalFit]) -> None:
        self.rows, self.runtime_for, self.k, self.oof_fits = rows, runtime_for, n_candidates, oof_fits

    def _job(self, wanted: list[int], **extra: Any) -> Any:
        keep = np.zeros(self.k, dtype=bool)
        keep[wanted] = True
        runtime, idx = self.runtime_for(keep)
        return self.rows._job(runtime, idx, self.oof_fits, **extra)

    def extremes(self, cols: list[int]) -> dict[int, tuple[float, float, float]]:
        import dask

        got = [g for g in dask.compute(*self.rows.map(_partition_extremes, self._job(cols, cols=cols)))
               if g is not None]
        return {j: (np.min([g[j][0] for g in got]), np.max([g[j][1] for g in got]), got[0][j][2]) for j in cols}

    def equal(self, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], bool]:
        import dask

        cols = sorted({j for p in pairs for j in p})
        got = dask.compute(*self.rows.map(_partition_equal, self._job(cols, pairs=pairs)))
        return {p: all(g[p] for g in got) for p in pairs}
