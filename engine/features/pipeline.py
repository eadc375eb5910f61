"""FeaturePipeline: fit the feature transforms on the training split, apply them everywhere after.

Fitting happens here (pandas in, statistics out); applying is :class:`engine.features.runtime.
FeatureRuntime`, the NumPy-only module that is also copied next to the served model, so offline and
served features cannot diverge.

Order of the steps (each fitted on the training rows only)
----------------------------------------------------------
1. Columns: ``exclude`` (the run passes ``governance.sensitive``) and ``features.exclude`` never enter;
   ``id`` and ``text`` columns are dropped; the rest are numeric, categorical or datetime.
2. Numeric values: the numeric columns, the derived features of ``features.derive`` (computed from
   the raw values: ``a / b`` or ``a - b``; a zero denominator gives a missing value) and the date
   parts of each datetime column. Each is imputed (plus a missing indicator when the training column
   had missing values; one ``<column>__missing`` per datetime column), clipped and scaled.
3. Categorical columns: missing -> a fill level, then one-hot / hashing / frequency / target encoding
   by cardinality (see :mod:`engine.features.categorical`).
4. Selection: constant, duplicate and highly correlated features are dropped
   (:mod:`engine.features.select`).
5. Optional PCA / truncated SVD (:mod:`engine.features.reduce`).

Statistics that need quantiles or moments (fill values, clip bounds, scaler), the selection screening
and PCA / SVD use a seeded sample of ``sample_rows`` training rows when there are more; counts
(missing values, category levels, frequencies, target sums) always use every training row.

In memory or partitioned
------------------------
:meth:`FeaturePipeline.fit` reads a pandas frame; :meth:`FeaturePipeline.fit_dask` a Dask DataFrame,
without collecting it. Both run one fit (:meth:`FeaturePipeline._fit_stats`) over a :class:`FullStats`:
the sample rows plus the few statistics that need every row (missing counts, time-of-day flags,
category counts and per-fold target sums, and the confirmation of constant / duplicate suspects).
:class:`InMemoryRows` computes them from the frame (on the host, or with ``xp=cupy`` on the GPU
from one device copy of the converted columns); :class:`engine.features.partitioned.PartitionedRows`
as per-partition statistics merged once. The sample is the same rows either way (global positions),
so every fit gives the same pipeline.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from engine.errors import DataError
from engine.features import runtime as rt
from engine.features.categorical import CategoricalFit, fit_categorical, fold_ids
from engine.features.config import Reduce, config_record, resolve_config
from engine.features.numeric import NumericFit, fit_numeric

if TYPE_CHECKING:
    from engine.features.select import FullData

#: Version of what :meth:`FeaturePipeline.report` returns.
REPORT_VERSION = 1


def _hash_bytes(data: Any, offsets: Any, seed: int = 0) -> Any:
    """Trident's categorical hash on its Numba twin (imported on first use: only hashing needs it)."""
    from kernels.hashing import hash_bytes

    return hash_bytes(data, offsets, seed)


def _hasher() -> Any:
    return _hash_bytes


def _check_target(y: Any, n: int) -> np.ndarray | None:
    if y is None:
        return None
    try:
        a = np.asarray(y, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError("features: the target y must be numeric (0/1 for binary, float for regression)") from None
    if a.shape[0] != n:
        raise DataError(f"features: the target y has {a.shape[0]} values for {n} rows")
    if not np.isfinite(a).all():
        raise DataError("features: the target y has missing or infinite values")
    return a


def _check_column_names(columns: Any) -> None:
    cols = list(columns)
    if len(set(map(str, cols))) != len(cols) or not all(isinstance(c, str) for c in cols):
        raise DataError("features: column names must be unique strings")


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for nm in names:
        if nm in seen:
            seen[nm] += 1
            cand = f"{nm}#{seen[nm]}"
            while cand in seen:
                seen[nm] += 1
                cand = f"{nm}#{seen[nm]}"
            nm = cand
        seen.setdefault(nm, 0)
        out.append(nm)
    return out


class _Layout:
    """Every candidate feature of a fit, and how to turn a keep-set into a runtime spec."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.origin: list[str] = []  # input column or derived feature each candidate comes from
        self.numeric: list[dict[str, Any]] = []  # {name, source, fit, value, indicator, origin}
        self.categorical: list[tuple[CategoricalFit, list[int]]] = []

    def add(self, name: str, origin: str) -> int:
        self.names.append(name)
        self.origin.append(origin)
        return len(self.names) - 1

    def spec(self, keep_index: np.ndarray, input_order: list[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Runtime spec + arrays computing the candidates with ``keep_index[j] >= 0`` into that column."""
        numeric, params = [], []
        used: set[str] = set()
        for st in self.numeric:
            v = int(keep_index[st["value"]])
            i = int(keep_index[st["indicator"]]) if st["indicator"] >= 0 else -1
            if v < 0 and i < 0:
                continue
            numeric.append({"name": st["name"], "source": st["source"], "value": v, "indicator": i})
            params.append(st["fit"].row())
            src = st["source"]
            used.update(src[k] for k in ("column", "a", "b") if k in src)
        categorical, arrays = [], {}
        for j, (fit, cols) in enumerate(self.categorical):
            got = fit.entry(f"cat{j}", [int(keep_index[c]) for c in cols])
            if got is None:
                continue
            ent, arr = got
            categorical.append(ent)
            arrays.update(arr)
            used.add(fit.column)
        arrays["numeric_params"] = np.asarray(params, dtype=np.float64).reshape(-1, 5)
        kept = [j for j in range(len(self.names)) if keep_index[j] >= 0]
        names = [""] * len(kept)
        for j in kept:
            names[int(keep_index[j])] = self.names[j]
        spec = {
            "format": rt.FORMAT,
            "format_version": rt.FORMAT_VERSION,
            "inputs": [[c, k] for c, k in input_order if c in used],
            "numeric": numeric,
            "categorical": categorical,
            "n_columns": len(kept),
            "feature_names": names,
            "reduce": {"method": "none"},
        }
        return spec, arrays


def _compact(keep: np.ndarray) -> np.ndarray:
    """Boolean keep mask -> new column index per candidate (-1 = dropped)."""
    idx = np.full(keep.shape[0], -1, dtype=np.int64)
    idx[keep] = np.arange(int(keep.sum()))
    return idx


def _plan_columns(df: Any, kinds: Any, exclude: Any, cfg: Any) -> tuple[list[tuple[str, str]], dict, dict, list]:
    """Which columns become features (name, kind), the report entry of every column and derived
    feature, and the derived features that may be computed."""
    from engine.errors import ConfigError
    from engine.features.frame import infer_kinds

    kinds_all = infer_kinds(df, kinds, cfg.id_min_rows)
    sensitive = {str(c) for c in (exclude or ())}
    excluded_cfg = set(cfg.exclude)
    columns_report: dict[str, dict[str, Any]] = {}
    candidates: list[tuple[str, str]] = []
    for c in df.columns:
        k = kinds_all[c]
        rec: dict[str, Any] = {"kind": k, "dtype": str(df[c].dtype)}
        if c in sensitive:
            rec.update(fate="dropped", reason="sensitive", detail="listed in governance.sensitive (exclude)")
        elif c in excluded_cfg:
            rec.update(fate="dropped", reason="excluded", detail="listed in features.exclude")
        elif k == "id":
            rec.update(fate="dropped", reason="id", detail="identifier column")
        elif k == "text":
            rec.update(fate="dropped", reason="text", detail="free text is not encoded")
        else:
            candidates.append((c, k))
        columns_report[c] = rec
    cand_kind = dict(candidates)
    derived_report: dict[str, dict[str, Any]] = {}
    derive_ok = []
    for i, d in enumerate(cfg.derive):
        rec = {"op": d.op.value, "a": d.a, "b": d.b}
        blocked = [c for c in (d.a, d.b) if c in sensitive or c in excluded_cfg]
        for side, c in (("a", d.a), ("b", d.b)):
            if c not in df.columns:
                raise ConfigError(f"features.derive[{i}].{side}: column {c!r} is not in the data")
            if c not in blocked and cand_kind.get(c) != "numeric":
                raise ConfigError(f"features.derive[{i}].{side}: column {c!r} is {kinds_all[c]}, expected numeric")
        if blocked:
            rec.update(fate="dropped", reason="sensitive", detail=f"uses excluded column {blocked[0]!r}")
        else:
            derive_ok.append(d)
        derived_report[d.name] = rec
    return candidates, columns_report, derived_report, derive_ok


def _numeric_steps(candidates: list[tuple[str, str]], derive_ok: list, has_time: Callable[[str], bool],
                   columns_report: dict, cfg: Any) -> tuple[list[tuple[str, dict[str, Any], str]], dict[str, list[str]]]:
    """(name, source, origin) of every numeric step: columns, derived features, date parts; and the
    date parts of each datetime column (hour only when some training value has a time of day)."""
    steps: list[tuple[str, dict[str, Any], str]] = []
    for c, k in candidates:
        if k == "numeric":
            steps.append((c, {"op": "column", "column": c}, c))
    for d in derive_ok:
        steps.append((d.name, {"op": d.op.value, "a": d.a, "b": d.b}, d.name))
    wanted: dict[str, list[str]] = {}
    for c, k in candidates:
        if k != "datetime":
            continue
        if not cfg.dates:
            columns_report[c].update(fate="dropped", reason="dates off", detail="features.dates is false")
            continue
        parts = [p for p in cfg.date_parts if p != "hour" or has_time(c)]
        wanted[c] = parts
        for p in parts:
            steps.append((f"{c}__{p}", {"op": "datepart", "column": c, "part": p}, c))
    return steps, wanted


def _missing_rows(src: dict[str, Any], prepared: dict[str, Any], n: int, xp: Any = np) -> int:
    """Training rows where a numeric step's source is missing (every row, not the sample); the
    prepared columns are arrays of ``xp``."""
    op = src["op"]
    if op == "column":
        return int(xp.count_nonzero(~xp.isfinite(prepared[src["column"]])))
    if op == "datepart":
        return int(xp.count_nonzero(prepared[src["column"]] == rt.NAT))
    return int(xp.count_nonzero(~xp.isfinite(rt.source_values(src, prepared, 0, n, xp))))


def has_time_of_day(ns: Any, xp: Any = np) -> bool:
    """Whether some (non-missing) datetime in int64 nanoseconds (an array of ``xp``) is not at midnight."""
    return bool(xp.any((ns % (86_400 * 10**9) != 0) & (ns != rt.NAT)))


def sample_rows(n: int, cfg: Any) -> np.ndarray | None:
    """Sorted positions of the seeded sample of ``cfg.sample_rows`` training rows (None: every row)."""
    if cfg.sample_rows and n > cfg.sample_rows:
        rng = np.random.default_rng(cfg.seed)
        return np.sort(rng.choice(n, size=cfg.sample_rows, replace=False))
    return None


def with_oof(X: np.ndarray, idx: np.ndarray, oof: Mapping[int, np.ndarray]) -> np.ndarray:
    """Put the out-of-fold target encodings ``oof`` (candidate -> float32 values) into their columns."""
    for j, v in oof.items():
        if idx[j] >= 0:
            X[:, int(idx[j])] = v
    return X


class FullStats(Protocol):
    """Statistics over every training row that a fit needs beyond its sample.

    :class:`InMemoryRows` computes them from a frame held in memory; :class:`engine.features.
    partitioned.PartitionedRows` from a Dask DataFrame, as per-partition statistics merged once.
    Both give the same answers, so both fits share :meth:`FeaturePipeline._fit_stats`.
    """

    n: int

    def load(self, candidates: list[tuple[str, str]], derive_ok: list, sample: np.ndarray | None) -> None:
        """Collect what the queries below need (the partitioned rows run their pass here)."""

    def sample(self) -> tuple[dict[str, Any], int]:
        """Prepared columns of the sample rows (every row without a sample) and their count."""

    def has_time(self, column: str) -> bool:
        """Whether a datetime column has a value with a time of day."""

    def missing_rows(self, src: dict[str, Any]) -> int:
        """Training rows where a numeric step's source is missing."""

    def categorical(self, column: str) -> CategoricalFit:
        """The fitted encoder of a categorical column (levels, counts, target sums: every row)."""

    def sample_oof(self, fit: CategoricalFit) -> np.ndarray:
        """float32 out-of-fold target encoding of the sample rows."""

    def full(self, runtime_for: Callable, n_candidates: int, oof_fits: dict[int, CategoricalFit]) -> FullData:
        """Answers about candidate features on every training row, for the selection screening.

        ``runtime_for(keep)`` -> (runtime computing the candidates of the boolean mask ``keep``,
        each candidate's column in its output); ``oof_fits``: candidate -> target-encoding fit.
        """

    def train_matrix(self, runtime: rt.FeatureRuntime, idx: np.ndarray, oof_fits: dict[int, CategoricalFit]) -> Any:
        """The training rows' features (``idx``: each candidate's column before reduction),
        target-encoded columns out of fold."""


def on_namespace(prepared: dict[str, Any], xp: Any) -> dict[str, Any]:
    """Prepared columns moved to ``xp`` (dictionary codes move, their texts stay on the host; the raw
    strings of a hashing-only column stay as they are)."""
    if xp is np:
        return prepared
    out: dict[str, Any] = {}
    for c, p in prepared.items():
        if isinstance(p, rt.Encoded):
            out[c] = rt.Encoded(xp.asarray(p.codes), p.values)
        elif isinstance(p, rt.StringColumn):
            out[c] = p
        else:
            out[c] = xp.asarray(p)
    return out


class InMemoryRows:
    """:class:`FullStats` of a training frame held in memory (its prepared columns).

    With ``xp`` a device namespace (CuPy) the columns are moved there once: every full-data statistic
    (missing counts, category counts, target sums, out-of-fold encodings, the suspects' confirmation)
    and the training matrix are computed on the device; the seeded sample is taken from the host
    copy, and only small tables come back.
    """

    def __init__(self, prepared: dict[str, Any], n: int, y: np.ndarray | None, cfg: Any, xp: Any = None) -> None:
        self.xp = np if xp is None else xp
        self.prepared, self.n, self.cfg = prepared, n, cfg
        self.full_cols = on_namespace(prepared, self.xp)
        self.y = None if y is None else self.xp.asarray(y, dtype=self.xp.float64)
        self.folds = self.xp.asarray(fold_ids(n, cfg.target_folds, cfg.seed)) if y is not None else None
        self.rows: np.ndarray | None = None
        self.prepared_s = prepared
        self.oof: dict[str, Any] = {}

    def load(self, candidates: list[tuple[str, str]], derive_ok: list, sample: np.ndarray | None) -> None:
        self.rows = sample
        self.prepared_s = rt.subset(self.prepared, sample) if sample is not None else self.prepared

    def sample(self) -> tuple[dict[str, Any], int]:
        return self.prepared_s, self.n if self.rows is None else int(self.rows.shape[0])

    def has_time(self, column: str) -> bool:
        return has_time_of_day(self.full_cols[column], self.xp)

    def missing_rows(self, src: dict[str, Any]) -> int:
        return _missing_rows(src, self.full_cols, self.n, self.xp)

    def categorical(self, column: str) -> CategoricalFit:
        fit = fit_categorical(column, self.full_cols[column], self.y, self.cfg, self.folds, self.xp)
        if fit.oof is not None:
            self.oof[column] = fit.oof.astype(self.xp.float32)
        return fit

    def sample_oof(self, fit: CategoricalFit) -> np.ndarray:
        from engine.backend import to_numpy

        v = self.oof[fit.column]
        return np.asarray(to_numpy(v if self.rows is None else v[self.xp.asarray(self.rows)]))

    def full(self, runtime_for: Callable, n_candidates: int, oof_fits: dict[int, CategoricalFit]) -> FullData:
        from engine.features.select import FullColumns

        def full_columns(cols: list[int]) -> dict[int, Any]:
            keep = np.zeros(n_candidates, dtype=bool)
            keep[cols] = True
            r, idx = runtime_for(keep)
            X = with_oof(r.transform_prepared(self.full_cols, self.n, self.xp, reduce=False), idx,
                         self.train_oof(oof_fits))
            return {j: X[:, int(idx[j])] for j in cols}

        return FullColumns(full_columns)

    def train_oof(self, oof_fits: dict[int, CategoricalFit]) -> dict[int, Any]:
        """Candidate -> float32 out-of-fold values of every training row."""
        return {j: self.oof[f.column] for j, f in oof_fits.items()}

    def train_matrix(self, runtime: rt.FeatureRuntime, idx: np.ndarray,
                     oof_fits: dict[int, CategoricalFit]) -> Any:
        """The training rows' features (on ``xp``), target-encoded columns out of fold."""
        X = runtime.transform_prepared(self.full_cols, self.n, self.xp, reduce=False)
        X = with_oof(X, idx, self.train_oof(oof_fits))
        if runtime.reduce_spec["method"] != "none":
            X = runtime.apply_reduce(X, self.xp)
        return X


class FeaturePipeline:
    """Fitted feature engineering (impute, clip, scale, encode, hash, dates, derive, select, reduce).

    Parameters
    ----------
    config : FeaturesConfig, DictConfig or mapping, optional
        ``conf/features`` values; keyword arguments override single keys.

    Attributes (after fit)
    ----------------------
    feature_names_ : list of str
    input_columns_ : list of str
        Raw columns ``transform`` reads.
    input_kinds_ : dict
        Column -> numeric | categorical | datetime.
    runtime_ : FeatureRuntime
        The apply logic (also what :meth:`save` writes).
    config_ : FeaturesConfig
        The validated configuration used.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"income": [1.0, 2.0, None, 4.0], "home": ["rent", "own", "rent", None]})
    >>> fp = FeaturePipeline(scaler="none", clip="none", correlation_threshold=None)
    >>> fp.fit_transform(df).shape
    (4, 5)
    >>> fp.feature_names_
    ['income', 'income__missing', 'home=rent', 'home=__missing__', 'home=own']
    """

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        self.config = config
        self.overrides = overrides

    # ------------------------------------------------------------------ estimator protocol
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"config": self.config, **self.overrides}

    def set_params(self, **params: Any) -> "FeaturePipeline":
        if "config" in params:
            self.config = params.pop("config")
        self.overrides.update(params)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.overrides.items())
        return f"FeaturePipeline({args})"

    def _check_fitted(self) -> None:
        if not hasattr(self, "runtime_"):
            raise RuntimeError("FeaturePipeline is not fitted: call fit() or load() first")

    # ------------------------------------------------------------------------------- fit
    def fit(self, df: Any, y: Any = None, kinds: dict[str, str] | None = None, exclude: Any = (),
            xp: Any = None) -> "FeaturePipeline":
        """Fit every transform on the training frame ``df`` (and target ``y`` for target encoding).

        Parameters
        ----------
        df : pandas.DataFrame
            Training rows, raw columns (a cuDF frame is read through pandas and fitted on CuPy).
        y : 1-D array, optional
            Target (0/1 for binary, float for regression); needed by target encoding only.
        kinds : dict, optional
            Column -> numeric | categorical | datetime | id | text; inferred from dtypes where absent.
        exclude : iterable of str
            Columns that must never enter the features (the run passes ``governance.sensitive``).
        xp : module, optional
            Where the full-data statistics are computed: NumPy (default) or CuPy. On CuPy the columns
            are converted on the host once (strings dictionary-encoded) and moved to the device; the
            counts, target sums and checks that read every row run there, and only the seeded sample
            and small tables come back. The fitted pipeline is the same either way (sums of a
            non-integer target may differ in the last bits).
        """
        self._fit(df, y, kinds, exclude, want_train=False, xp=xp)
        return self

    def fit_transform(self, df: Any, y: Any = None, kinds: dict[str, str] | None = None, exclude: Any = (),
                      xp: Any = None) -> Any:
        """Fit, then return the training features (float32, on ``xp``: see :meth:`fit`); target-encoded
        columns hold their out-of-fold values."""
        return self._fit(df, y, kinds, exclude, want_train=True, xp=xp)

    def fit_dask(self, ddf: Any, y: Any = None, kinds: dict[str, str] | None = None,
                 exclude: Any = ()) -> "FeaturePipeline":
        """Fit on a Dask DataFrame without collecting it: per-partition statistics merged once.

        The fitted pipeline equals :meth:`fit` on the concatenated partitions (the same sample,
        counts, levels and selection); target sums of a non-integer target may differ in the last
        bits (they are added up per partition). Only the seeded sample of ``sample_rows`` rows (every
        row when there are no more) comes to this process; everything else is computed by Dask tasks
        on the current scheduler (see :mod:`engine.features.partitioned` for the passes). Each pass
        reads the partitions again: ``ddf.persist()`` first when the frame fits in the workers' memory.

        Parameters
        ----------
        ddf : dask.dataframe.DataFrame
            Training rows, raw columns, in any number of partitions.
        y : dask Series, dask array or 1-D array, optional
            Target, row-aligned with ``ddf`` (a NumPy array is sliced at the partition boundaries; a
            Dask collection is re-cut to them when its partitions differ).
        kinds, exclude
            As in :meth:`fit`.

        Raises
        ------
        DataError
            ``ddf`` is not a Dask DataFrame, has no rows, or ``y`` has another length.

        Examples
        --------
        >>> import dask, dask.dataframe as dd, pandas as pd
        >>> df = pd.DataFrame({"income": [1.0, 2.0, None, 4.0], "home": ["rent", "own", "rent", None]})
        >>> fp = FeaturePipeline(scaler="none", clip="none", correlation_threshold=None)
        >>> with dask.config.set(scheduler="synchronous"):
        ...     fp = fp.fit_dask(dd.from_pandas(df, npartitions=2))
        >>> fp.report()["fitted_on"]
        {'partitions': 2, 'rows': 4}
        """
        self._fit_partitioned(ddf, y, kinds, exclude, want_train=False)
        return self

    def fit_transform_dask(self, ddf: Any, y: Any = None, kinds: dict[str, str] | None = None,
                           exclude: Any = ()) -> Any:
        """:meth:`fit_dask`, then the training features as a lazy Dask array.

        float32, one chunk per partition (row counts known), rows in order; target-encoded columns
        hold their out-of-fold values, computed partition by partition from the merged per-fold
        sums. ``.compute()`` equals :meth:`fit_transform` on the concatenated partitions.
        """
        return self._fit_partitioned(ddf, y, kinds, exclude, want_train=True)

    def _fit(self, df: Any, y: Any, kinds: Any, exclude: Any, want_train: bool, xp: Any = None) -> Any:
        import pandas as pd

        from engine.features.frame import to_columns

        cfg = resolve_config(self.config, **self.overrides)
        df, xp = _host_frame(df, xp)
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"features: fit expects a pandas DataFrame, got {type(df).__name__}")
        _check_column_names(df.columns)
        n = len(df)
        if n == 0:
            raise DataError("features: cannot fit on an empty frame")
        yv = _check_target(y, n)
        candidates, columns_report, derived_report, derive_ok = _plan_columns(df, kinds, exclude, cfg)
        columns = to_columns(df, dict(candidates))
        try:
            prepared, _ = rt.prepare_columns(columns, candidates)
        except rt.FeatureInputError as exc:
            raise DataError(str(exc)) from None
        rows = InMemoryRows(prepared, n, yv, cfg, xp)
        idx, oof_fits = self._fit_stats(cfg, rows, candidates, columns_report, derived_report, derive_ok, df.shape[1])
        if not want_train:
            return None
        return rows.train_matrix(self.runtime_, idx, oof_fits)

    def _fit_partitioned(self, ddf: Any, y: Any, kinds: Any, exclude: Any, want_train: bool) -> Any:
        from engine.features.partitioned import PartitionedRows

        cfg = resolve_config(self.config, **self.overrides)
        rows = PartitionedRows(ddf, y, cfg, kinds)  # checks the frame and y, counts every partition's rows
        candidates, columns_report, derived_report, derive_ok = _plan_columns(rows.meta, rows.kinds, exclude, cfg)
        idx, oof_fits = self._fit_stats(cfg, rows, candidates, columns_report, derived_report, derive_ok,
                                        rows.meta.shape[1])
        self.report_["fitted_on"] = {"partitions": rows.n_partitions, "rows": rows.n}
        if not want_train:
            return None
        return rows.train_matrix(self.runtime_, idx, oof_fits)

    def _fit_stats(self, cfg: Any, rows: FullStats, candidates: list[tuple[str, str]], columns_report: dict,
                   derived_report: dict, derive_ok: list,
                   n_features_in: int) -> tuple[np.ndarray, dict[int, CategoricalFit]]:
        """Fit every step from the sample and the full-data statistics ``rows``; set the fitted state.

        Returns each candidate's column in the pre-reduction output and the target-encoding fits
        by candidate (what the training matrix needs).
        """
        from engine.features.reduce import fit_reduce
        from engine.features.select import screen

        n = rows.n
        notes: list[str] = []
        sample = sample_rows(n, cfg)
        if sample is not None:
            notes.append(f"quantiles, moments, selection screening and reduction used a seeded sample of "
                         f"{cfg.sample_rows} of {n} training rows")
        rows.load(candidates, derive_ok, sample)
        prepared_s, m = rows.sample()

        lay = _Layout()
        steps, wanted = _numeric_steps(candidates, derive_ok, rows.has_time, columns_report, cfg)
        cache: dict[str, Any] = {}
        indicated: set[str] = set()  # datetime columns that already have their one missing indicator
        for name, src, origin in steps:
            op = src["op"]
            n_miss = rows.missing_rows(src)
            x_s = rt.source_values(src, prepared_s, 0, m, np, cache, wanted)
            fit = fit_numeric(x_s, cfg)
            vi = lay.add(name, origin)
            ii = -1
            if cfg.missing_indicators and n_miss > 0 and origin not in indicated:
                ii = lay.add(f"{origin if op == 'datepart' else name}__missing", origin)
                if op == "datepart":
                    indicated.add(origin)
            lay.numeric.append({"name": name, "source": src, "fit": fit, "value": vi, "indicator": ii,
                                "missing": n_miss})
        # categorical columns
        oof_fits: dict[int, CategoricalFit] = {}
        oof_s: dict[int, np.ndarray] = {}
        for c, k in candidates:
            if k != "categorical":
                continue
            fit = rows.categorical(c)
            idx = [lay.add(nm, c) for nm in fit.names]
            lay.categorical.append((fit, idx))
            if fit.target is not None:
                oof_fits[idx[0]] = fit
                oof_s[idx[0]] = rows.sample_oof(fit)
            columns_report[c].update(encoder=fit.encoder, encoder_reason=fit.why, n_levels=fit.n_levels)
            notes.extend(f"{c}: {t}" for t in fit.notes)
        lay.names = _unique_names(lay.names)
        K = len(lay.names)
        input_order = [(c, k) for c, k in candidates]
        hasher = _hasher()

        def runtime_for(keep: np.ndarray) -> tuple[rt.FeatureRuntime, np.ndarray]:
            idx = _compact(keep)
            spec, arrays = lay.spec(idx, input_order)
            return rt.FeatureRuntime(spec, arrays, hasher=hasher), idx

        # selection
        all_keep = np.ones(K, dtype=bool)
        r_all, idx_all = runtime_for(all_keep)
        need_sample_matrix = cfg.drop_constant or cfg.drop_duplicates or cfg.correlation_threshold is not None \
            or cfg.reduce is not Reduce.none
        X_s = None
        if need_sample_matrix and K:
            X_s = with_oof(r_all.transform_prepared(prepared_s, m, reduce=False), idx_all, oof_s)
        drops = {}
        if X_s is not None:
            drops = screen(X_s, lay.names, drop_constant=cfg.drop_constant, drop_duplicates=cfg.drop_duplicates,
                           correlation_threshold=cfg.correlation_threshold,
                           full=rows.full(runtime_for, K, oof_fits) if sample is not None else None)
        keep = np.ones(K, dtype=bool)
        for j in drops:
            keep[j] = False
        idx = _compact(keep)
        spec, arrays = lay.spec(idx, input_order)
        pre_names = list(spec["feature_names"])
        reduce_info: dict[str, Any] = {"method": "none"}
        if cfg.reduce is not Reduce.none and keep.any():
            assert X_s is not None
            red = fit_reduce(X_s[:, keep], cfg.reduce.value, cfg.n_components)
            c = red.components.shape[0]
            spec["reduce"] = {"method": red.method, "n_components": c, "columns": pre_names}
            spec["feature_names"] = [f"{red.method}{i}" for i in range(c)]
            arrays["reduce_mean"] = red.mean
            arrays["reduce_components"] = red.components
            reduce_info = {"method": red.method, "n_components": c,
                           "explained_variance_ratio": [float(v) for v in red.explained_variance_ratio]}
        self.runtime_ = rt.FeatureRuntime(spec, arrays, hasher=hasher)
        self.config_ = cfg
        self.feature_names_ = self.runtime_.feature_names
        self.input_columns_ = self.runtime_.input_columns
        self.input_kinds_ = self.runtime_.input_kinds
        self.n_features_in_ = n_features_in
        self.report_ = self._build_report(lay, drops, keep, columns_report, derived_report, reduce_info, notes, n,
                                          pre_names)
        return idx, oof_fits

    # ------------------------------------------------------------------------- report
    def _build_report(self, lay: _Layout, drops: dict, keep: np.ndarray, columns_report: dict, derived_report: dict,
                      reduce_info: dict, notes: list[str], n: int, pre_names: list[str]) -> dict[str, Any]:
        dropped_features = {lay.names[j]: {"reason": d.reason, "detail": d.detail} for j, d in sorted(drops.items())}
        by_origin: dict[str, list[int]] = {}
        for j, o in enumerate(lay.origin):
            by_origin.setdefault(o, []).append(j)
        derived_inputs_used: dict[str, list[str]] = {}
        for st in lay.numeric:
            src = st["source"]
            if src["op"] in ("ratio", "difference") and keep[st["value"]]:
                for c in (src["a"], src["b"]):
                    derived_inputs_used.setdefault(c, []).append(st["name"])
        for target in (columns_report, derived_report):
            for c, rec in target.items():
                if "fate" in rec:
                    continue
                js = by_origin.get(c, [])
                rec["features"] = [lay.names[j] for j in js if keep[j]]
                rec["dropped_features"] = {lay.names[j]: drops[j].detail for j in js if not keep[j] and j in drops}
                if rec["features"]:
                    rec.update(fate="used", reason=None)
                elif c in derived_inputs_used:
                    rec.update(fate="used", reason="derived only",
                               detail=f"input of {', '.join(derived_inputs_used[c])}")
                else:
                    reasons = sorted({drops[j].reason for j in js if j in drops}) or ["no features"]
                    rec.update(fate="dropped", reason=", ".join(reasons),
                               detail="; ".join(f"{lay.names[j]}: {drops[j].detail}" for j in js if j in drops))
        numeric_params = {}
        for st in lay.numeric:
            f: NumericFit = st["fit"]
            numeric_params[st["name"]] = {"fill": f.fill, "clip": [_finite(f.lo), _finite(f.hi)], "center": f.center,
                                          "scale": f.scale,
                                          "missing_rows": st["missing"]}
        return {
            "report_version": REPORT_VERSION,
            "format_version": rt.FORMAT_VERSION,
            "rows_fitted": n,
            "n_candidates": len(lay.names),
            "n_features": len(self.runtime_.feature_names),
            "feature_names": list(self.runtime_.feature_names),
            "features_before_reduce": pre_names,
            "columns": columns_report,
            "derived": derived_report,
            "dropped_features": dropped_features,
            "numeric": numeric_params,
            "reduce": reduce_info,
            "notes": notes,
            "config": config_record(self.config_),
        }

    def report(self) -> dict[str, Any]:
        """What happened to every input column (used / dropped and why), features, parameters, notes.

        JSON data, for the model card and the run record.
        """
        self._check_fitted()
        return json.loads(json.dumps(self.report_, default=str))

    # -------------------------------------------------------------------------- apply
    @property
    def n_features_(self) -> int:
        self._check_fitted()
        return self.runtime_.n_features

    def _columns(self, df: Any) -> dict[str, Any]:
        if isinstance(df, Mapping):
            return dict(df)
        from engine.features.frame import to_columns

        raw = {e["column"] for e in self.runtime_.categorical if e["encoder"] == "hashing"}
        return to_columns(df, self.input_kinds_, raw_strings=raw)

    def transform(self, df: Any, xp: Any = None) -> Any:
        """Apply the fitted pipeline: ``(rows, n_features)`` float32 (Fortran-ordered), on ``xp``.

        ``df`` is a pandas DataFrame or a mapping of column -> array (a cuDF frame is read through
        pandas and computed on CuPy). Delegates to :meth:`FeatureRuntime.transform`; input problems
        raise :class:`DataError` naming the column.
        """
        self._check_fitted()
        df, xp = _host_frame(df, xp)
        columns = self._columns(df)
        try:
            return self.runtime_.transform(columns, xp=xp)
        except rt.FeatureInputError as exc:
            raise DataError(str(exc)) from None

    def transform_dask(self, ddf: Any) -> Any:
        """Apply to every partition of a Dask DataFrame (``map_partitions``): a Dask array of float32.

        Each partition is transformed on its own; the result equals :meth:`transform` on the whole
        frame (row order kept). Row counts per chunk are unknown until computed.
        """
        self._check_fitted()
        meta = np.empty((0, self.runtime_.n_features), dtype=np.float32)
        return ddf.map_partitions(_transform_partition, self, meta=meta)

    # ----------------------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """Write ``features.json`` (params, format version, config, report) and ``features.npz``."""
        from engine.atomic import write_json, write_npz

        self._check_fitted()
        path = Path(path)
        spec = dict(self.runtime_.spec)
        spec["pipeline"] = {"config": config_record(self.config_), "report": self.report()}
        write_npz(path / rt.ARRAYS_FILE, self.runtime_.arrays)
        write_json(path / rt.SPEC_FILE, spec)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FeaturePipeline":
        """Read a pipeline written by :meth:`save`; it transforms bit-identically."""
        runtime = rt.FeatureRuntime.load(str(path), hasher=_hasher())
        extra = runtime.spec.get("pipeline") or {}
        cfg = resolve_config(extra.get("config") or {})
        fp = cls(cfg)
        fp.runtime_ = runtime
        fp.config_ = cfg
        fp.feature_names_ = runtime.feature_names
        fp.input_columns_ = runtime.input_columns
        fp.input_kinds_ = runtime.input_kinds
        fp.report_ = extra.get("report") or {}
        return fp


def _host_frame(df: Any, xp: Any) -> tuple[Any, Any]:
    """A cuDF frame is read through pandas (strings are encoded on the host) and its numbers computed
    on CuPy unless ``xp`` says otherwise; any other frame and ``xp`` pass through."""
    if type(df).__module__.startswith("cudf"):
        from engine.backend import compat

        return df.to_pandas(), compat.cupy() if xp is None else xp
    return df, xp


def _transform_partition(pdf: Any, pipeline: FeaturePipeline) -> np.ndarray:
    return pipeline.transform(pdf)


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None
