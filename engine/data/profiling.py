"""Profiling (exploratory data analysis): what the data looks like before anything is fitted on it.

:func:`profile_frame` returns a JSON-ready dict: per-column statistics (type, count, missing, distinct,
moments, quantiles, histogram, top categories, date range), Pearson and Spearman correlations,
Cramér's V associations, target balance, each feature's association with the target, duplicate rows
and warnings (constant or near-constant columns, high cardinality, heavy missingness, class imbalance,
likely target leakage). :func:`stage` is the pipeline wrapper writing ``profile.json`` and a
self-contained ``profile.html``.

How the numbers are computed (no per-row Python anywhere):

- Numeric columns form one ``(columns x rows)`` matrix on the run's array backend (NumPy or CuPy).
  Every row of the matrix is sorted once, in place. Min, max, quantiles, histogram counts (exactly
  those of ``numpy.histogram``), zeros, negatives, infinities and the dominant value are read off the
  sorted rows with one batched binary search for all columns; the finite values of a sorted row are
  one contiguous segment (mean, standard deviation), and its distinct values are its value changes.
- Categorical, text, id and binary-target columns go through ``pandas.factorize`` and ``bincount``.
- Correlations (pairwise-complete Pearson from four small matrix products per block of rows,
  Spearman the same on ranks), univariate ROC AUC against a binary target and Cramér's V use a
  seeded sample of ``profile.sample_rows`` rows (0: every row); everything else uses every row.
- Duplicate rows are counted from 64-bit row hashes built column by column, keeping only the rows
  whose partial hash is still shared with another row.
- On the CPU, per-column work (casting, sorting, encoding) is spread over ``profile.threads`` threads.
"""
from __future__ import annotations

import os
from dataclasses import asdict, is_dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from engine import console
from engine.errors import ConfigError, DataError

LOG = console.LOG

#: Version of the profile.json layout.
PROFILE_FORMAT = "trident.profile/1"
#: Quantile levels reported for numeric columns, with their keys in profile.json.
QUANTILES: tuple[tuple[str, float], ...] = (
    ("p01", 0.01), ("p05", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95), ("p99", 0.99))
KINDS = ("numeric", "categorical", "datetime", "id", "text", "target")
#: Beyond this many months a datetime histogram counts years instead.
MAX_MONTH_BINS = 240

_DEFAULTS: dict[str, Any] = {
    "bins": 20, "top_k": 10, "sample_rows": 200000, "near_constant_share": 0.98, "high_cardinality": 50,
    "heavy_missing": 0.3, "imbalance_ratio": 0.1, "leakage_auc": 0.98, "leakage_corr": 0.98,
    "leakage_min_support": 20, "association_max_levels": 50, "precision": "float32", "chunk_rows": 65536, "threads": 0,
}


# ------------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------------
def profile_frame(frame: Any, kinds: dict[str, str], target: str, task: str, cfg: Any = None,
                  xp: ModuleType = np, seed: int = 0) -> dict[str, Any]:
    """Profile ``frame``: per-column statistics, correlations, associations, target balance, warnings.

    Parameters
    ----------
    frame : pandas.DataFrame
        The validated rows, target column included (a cuDF frame is converted to pandas).
    kinds : dict
        ``column -> numeric | categorical | datetime | id | text | target``; a column without an entry
        is inferred from its dtype (numbers are numeric, datetimes are datetime, the rest categorical).
    target : str
        Name of the target column.
    task : {"binary", "regression"}
        Binary targets are profiled as labels, regression targets as numbers.
    cfg : ProfileConfig, optional
        Bins, top-k, sample size, warning thresholds and precision (defaults when ``None``).
    xp : module
        Array namespace for the numeric statistics: ``numpy`` or ``cupy``.
    seed : int
        Seed of the row sample used for rank statistics and associations.

    Returns
    -------
    dict
        JSON-ready (no NaN or infinity: undefined numbers are ``None``); same input, same dict.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"x": [1.0, 2.0, None, 4.0], "c": ["a", "b", "a", "a"], "y": [0, 1, 0, 1]})
    >>> p = profile_frame(df, {"x": "numeric", "c": "categorical"}, "y", "binary")
    >>> p["columns"][0]["missing"], p["columns"][0]["mean"]
    ({'count': 1, 'share': 0.25}, 2.333333)
    """
    import pandas as pd

    opt = _options(cfg)
    task = str(getattr(task, "value", task))
    if task not in ("binary", "regression"):
        raise ConfigError(f"data.task: expected binary or regression, got {task!r}")
    if not isinstance(frame, pd.DataFrame) and hasattr(frame, "to_pandas"):
        frame = frame.to_pandas()
    _check_frame(frame, target)
    n = int(len(frame))
    kind_of = _column_kinds(frame, kinds, target)
    numeric = [c for c in frame.columns if kind_of[c] == "numeric"] + ([target] if task == "regression" else [])
    labelled = [c for c in frame.columns if kind_of[c] in ("categorical", "text", "id")]
    labelled += [target] if task == "binary" else []
    dates = [c for c in frame.columns if kind_of[c] == "datetime"]

    # labels first: factorised codes serve counts, associations, target purity and duplicates
    cat = _encode_all(frame, labelled, kind_of, opt)
    codes = {c: cat[c].pop("_codes") for c in labelled}
    if task == "binary":
        y_full = _binary_labels(codes[target], cat[target])  # 0/1, -1 where missing
        t_valid = y_full >= 0
    else:
        t_vals = _float_values(frame[target])
        t_valid = ~np.isnan(t_vals)
    sample = _sample_index(n, opt["sample_rows"], seed, None if bool(t_valid.all()) else t_valid)
    num = _numeric_block(frame, numeric, opt, xp, sample)
    dts = {c: _datetime_stats(frame[c]) for c in dates}
    stats = {**num["stats"], **cat, **dts}

    if task == "binary":
        balance = _binary_balance(cat[target])
        assoc_target = _binary_target_association(num, y_full[sample], codes, y_full, labelled, target, opt)
    else:
        balance = _regression_balance(num["stats"][target])
        assoc_target = _regression_target_association(num, codes, t_vals, labelled, target, opt)
    assoc_cols = [c for c in labelled if kind_of[c] == "categorical" or c == target]
    associations = _associations(assoc_cols, codes, {c: cat[c]["_order"] for c in assoc_cols}, sample,
                                 opt["association_max_levels"])
    by_distinct = sorted(frame.columns, key=lambda c: -int(stats[c]["distinct"]))
    duplicates = _duplicate_rows(frame, by_distinct, codes, dates)

    columns = [{"name": str(c), "kind": kind_of[c], "dtype": str(frame[c].dtype),
                **{k: v for k, v in stats[c].items() if not k.startswith("_")}} for c in frame.columns]
    missing_cells = int(sum(e["missing"]["count"] for e in columns))
    cells = n * len(columns)
    profile: dict[str, Any] = {
        "format": PROFILE_FORMAT,
        "overview": {
            "rows": n,
            "columns": len(columns),
            "missing_cells": missing_cells,
            "missing_share": missing_cells / cells,
            "duplicate_rows": duplicates,
            "duplicate_share": duplicates / n,
            "kinds": {k: sum(1 for c in frame.columns if kind_of[c] == k) for k in KINDS},
            "sample_rows": int(sample.size),
        },
        "target": {"name": str(target), "task": task, **balance},
        "columns": columns,
        "correlations": {"columns": [str(c) for c in numeric], "pearson": num["pearson"],
                         "spearman": num["spearman"], "sample_rows": int(sample.size)},
        "associations": associations,
        "target_association": assoc_target,
        "config": {k: opt[k] for k in sorted(opt) if k != "threads"},  # threads do not change results
    }
    profile["warnings"] = _warnings(profile, opt)
    return _clean(profile, 7 if opt["precision"] == "float32" else None)


def stage(ctx: Any) -> None:
    """Pipeline stage ``profile``: write profile.json and profile.html, log metrics.

    Reads ``ctx.state`` ``frame``, ``target``, ``task``, ``kinds``; sets ``ctx.state["profile"]`` (the
    dict) and ``ctx.state["report_html"]`` (the path of profile.html).
    """
    from engine.config.base import ProfileConfig
    from engine.data.profiling_html import render_html

    cfg = getattr(ctx.cfg, "profile", None) or ProfileConfig()
    if not bool(getattr(cfg, "enabled", True)):
        LOG.info("profile: disabled (profile.enabled=false)")
        return
    for key in ("frame", "target", "task"):
        if key not in ctx.state:
            raise DataError(f"profile: no {key!r} in the run state; the ingest and validate stages must run first")
    frame = ctx.state["frame"]
    with console.status(f"profiling {len(frame):,} rows x {frame.shape[1]} columns"):
        prof = profile_frame(frame, dict(ctx.state.get("kinds") or {}), ctx.state["target"], ctx.state["task"],
                             cfg, xp=ctx.backend.xp, seed=ctx.seed("profile"))
        html = render_html(prof)
    ctx.write_json("profile.json", prof)
    path = ctx.write_text("profile.html", html)
    ctx.state["profile"] = prof
    ctx.state["report_html"] = path
    ov = prof["overview"]
    ctx.log_metrics({"rows": ov["rows"], "columns": ov["columns"], "missing_cells": ov["missing_cells"],
                     "duplicate_rows": ov["duplicate_rows"], "warnings": len(prof["warnings"])}, prefix="profile.")
    for w in prof["warnings"]:
        LOG.info("profile warning: %s", w["message"])
    LOG.info("profile: %s", Path(path))


# ------------------------------------------------------------------------------------------------
# configuration and column kinds
# ------------------------------------------------------------------------------------------------
def _options(cfg: Any) -> dict[str, Any]:
    if cfg is None:
        src: dict[str, Any] = {}
    elif is_dataclass(cfg):
        src = asdict(cfg)
    elif isinstance(cfg, dict):
        src = dict(cfg)
    else:
        src = {k: getattr(cfg, k) for k in _DEFAULTS if hasattr(cfg, k)}
    opt = {k: src.get(k, v) if src.get(k) is not None else v for k, v in _DEFAULTS.items()}
    if opt["precision"] not in ("float32", "float64"):
        raise ConfigError(f"profile.precision: expected float32 or float64, got {opt['precision']!r}")
    for k in ("bins", "top_k", "chunk_rows", "association_max_levels"):
        if int(opt[k]) < 1:
            raise ConfigError(f"profile.{k}: expected a positive integer, got {opt[k]!r}")
        opt[k] = int(opt[k])
    opt["sample_rows"] = max(int(opt["sample_rows"]), 0)
    opt["threads"] = max(int(opt["threads"]), 0)
    opt["leakage_min_support"] = max(int(opt["leakage_min_support"]), 1)
    opt["high_cardinality"] = int(opt["high_cardinality"])
    for k in ("near_constant_share", "heavy_missing", "imbalance_ratio", "leakage_auc", "leakage_corr"):
        opt[k] = float(opt[k])
    return opt


def _column_kinds(frame: Any, kinds: dict[str, str], target: str) -> dict[Any, str]:
    import pandas as pd

    out = {}
    for c in frame.columns:
        k = "target" if c == target else kinds.get(c) or kinds.get(str(c))
        if k == "target" and c != target:
            k = None  # only the configured target is the target
        if k is None:
            dt = frame[c].dtype
            if pd.api.types.is_bool_dtype(dt) or pd.api.types.is_numeric_dtype(dt):
                k = "numeric"
            elif pd.api.types.is_datetime64_any_dtype(dt):
                k = "datetime"
            else:
                k = "categorical"
        if k not in KINDS:
            raise DataError(f"column {c!r}: unknown kind {k!r}; expected one of {', '.join(KINDS[:-1])}")
        out[c] = k
    return out


def _check_frame(frame: Any, target: str) -> None:
    if target not in frame.columns:
        raise DataError(f"target column {target!r} is not in the data (columns: {', '.join(map(str, frame.columns))})")
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise DataError("column names must be unique to be profiled; repeated: "
                        + ", ".join(sorted({c for c in names if names.count(c) > 1})))
    if len(frame) == 0:
        raise DataError("the data has no rows to profile")


def _encode_all(frame: Any, labelled: list[Any], kind_of: dict[Any, str], opt: dict[str, Any]) -> dict[Any, Any]:
    """Counts and top categories of every labelled column (threads on the CPU: encoding releases the GIL)."""
    cat: dict[Any, dict[str, Any]] = {}

    def encode(c: Any) -> None:
        e = _categorical_stats(frame[c], opt["top_k"])
        if kind_of[c] == "text":
            e.update(_text_lengths(frame[c]))
        cat[c] = e

    _each(encode, labelled, opt["threads"], np)
    return {c: cat[c] for c in labelled}


def _float_values(s: Any) -> np.ndarray:
    """A column as float NumPy values (missing -> NaN), without a copy when it already is one."""
    dt = s.dtype
    if isinstance(dt, np.dtype) and dt.kind in "fiub":
        return s.to_numpy()
    try:
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"column {s.name!r}: declared numeric but holds values that are not numbers "
                        f"(dtype {dt})") from exc


def _sample_index(n: int, size: int, seed: int, valid: np.ndarray | None = None) -> np.ndarray:
    """Sorted row numbers of a seeded sample of ``size`` rows (all rows when ``size`` is 0 or larger)."""
    rows = None if valid is None else np.flatnonzero(valid)
    total = n if rows is None else rows.size
    if size and total > size:
        pick = np.sort(np.random.default_rng(seed).choice(total, size=size, replace=False))
        return pick if rows is None else rows[pick]
    return np.arange(n) if rows is None else rows


# ------------------------------------------------------------------------------------------------
# numeric columns: one matrix, sorted once
# ------------------------------------------------------------------------------------------------
def _numeric_block(frame: Any, cols: list[Any], opt: dict[str, Any], xp: ModuleType,
                   sample: np.ndarray) -> dict[str, Any]:
    from engine.backend import to_numpy

    p, n = len(cols), len(frame)
    out: dict[str, Any] = {"cols": cols, "stats": {}, "pearson": [], "spearman": [], "ranks": None}
    if p == 0:
        return out
    dtype = np.float32 if opt["precision"] == "float32" else np.float64
    X = xp.empty((p, n), dtype=dtype)

    def fill(j: int) -> None:
        vals = _float_values(frame[cols[j]])
        X[j] = vals if xp is np else xp.asarray(vals)

    _each(fill, range(p), opt["threads"], xp)

    # correlations and ranks from the sample rows, before the matrix is sorted
    s = int(sample.size)
    S = X if s == n else X[:, xp.asarray(sample)]
    work = np.float64 if s <= (1 << 20) else dtype
    shift, scale = _shift_scale(xp, S)
    pearson = _pearson_from_sums(xp, *_moment_sums(xp, S, shift, scale, work, opt["chunk_rows"]))
    R = _rank_rows(xp, S)
    del S
    shift, scale = _shift_scale(xp, R)
    spearman = _pearson_from_sums(xp, *_moment_sums(xp, R, shift, scale, work, opt["chunk_rows"]))
    out["ranks"] = R

    # order statistics: every row sorted once, in place
    if xp is np:
        _each(lambda j: X[j].sort(), range(p), opt["threads"], xp)
    else:
        X.sort(axis=1)
    stats = _sorted_row_stats(xp, X, opt["bins"])
    stats.update(_segment_moments(xp, X, stats, opt["threads"]))
    del X
    host = {k: to_numpy(v) for k, v in stats.items()}
    for j, c in enumerate(cols):
        cnt = int(host["count"][j])
        dom = int(host["dominant_count"][j])
        e: dict[str, Any] = {
            "count": cnt,
            "missing": {"count": n - cnt, "share": (n - cnt) / n if n else 0.0},
            "distinct": int(host["distinct"][j]),
            "min": host["min"][j] if cnt else None,
            "max": host["max"][j] if cnt else None,
            "mean": host["mean"][j],
            "std": host["std"][j],
            "quantiles": {k: (host["quantiles"][j, i] if cnt else None) for i, (k, _) in enumerate(QUANTILES)},
            "zeros": int(host["zeros"][j]),
            "negatives": int(host["negatives"][j]),
            "infinite": int(host["infinite"][j]),
            "dominant_value": host["dominant_value"][j] if dom * 2 > cnt else None,
            "dominant_share": dom / cnt if cnt and dom * 2 > cnt else None,
            "histogram": ({"edges": host["edges"][j].tolist(), "counts": host["hist"][j].tolist()}
                          if host["finite"][j] else None),
        }
        out["stats"][c] = e
    out["pearson"] = to_numpy(pearson)
    out["spearman"] = to_numpy(spearman)
    return out


def _each(fn: Any, items: Any, threads: int, xp: ModuleType) -> None:
    """Call ``fn`` on every item; on the CPU backend spread over threads (NumPy and Arrow release the
    GIL in sorting, casting and encoding), on a GPU in order."""
    items = list(items)
    workers = min(len(items), int(threads) if threads else (os.cpu_count() or 1))
    if xp is not np or workers <= 1:
        for it in items:
            fn(it)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(fn, items):
            pass


def _shift_scale(xp: ModuleType, S: Any, max_rows: int = 65536) -> tuple[Any, Any]:
    """Rough mean and standard deviation per row of ``S`` (finite values of a strided subset): the
    shift and scale that keep the block sums of :func:`_moment_sums` well conditioned."""
    step = max(1, S.shape[1] // max_rows)
    sub = S[:, ::step].astype(xp.float64)
    fin = xp.isfinite(sub)
    cnt = fin.sum(axis=1)
    shift = xp.where(fin, sub, 0).sum(axis=1) / xp.maximum(cnt, 1)
    dev = xp.where(fin, sub - shift[:, None], 0)
    scale = xp.sqrt((dev * dev).sum(axis=1) / xp.maximum(cnt - 1, 1))
    return shift, xp.where(xp.isfinite(scale) & (scale > 0), scale, 1.0)


def _segment_moments(xp: ModuleType, X: Any, stats: dict[str, Any], threads: int) -> dict[str, Any]:
    """Mean and standard deviation of the finite values (a contiguous segment of each sorted row) and
    the number of distinct non-NaN values (value changes along the row)."""
    from engine.backend import to_numpy

    p = X.shape[0]
    lo, hi, cnt = (to_numpy(stats[k]).astype(np.int64) for k in ("fin_lo", "fin_hi", "count"))
    mean = xp.full(p, xp.nan, dtype=xp.float64)
    std = xp.full(p, xp.nan, dtype=xp.float64)
    distinct = xp.zeros(p, dtype=xp.int64)

    def one(j: int) -> None:
        k = int(hi[j] - lo[j])
        if k:
            seg = X[j, lo[j]:hi[j]]
            m0 = seg.sum(dtype=xp.float64) / k
            d = seg - m0.astype(X.dtype)
            s1 = d.sum(dtype=xp.float64)
            d *= d
            mean[j] = m0 + s1 / k
            if k > 1:
                std[j] = xp.sqrt(xp.maximum(d.sum(dtype=xp.float64) - s1 * s1 / k, 0) / (k - 1))
        if cnt[j]:
            v = X[j, :cnt[j]]
            distinct[j] = xp.count_nonzero(v[1:] != v[:-1]) + 1

    _each(one, range(p), threads, xp)
    return {"mean": mean, "std": std, "distinct": distinct}


def _moment_sums(xp: ModuleType, X: Any, shift: Any, scale: Any, work: Any,
                 chunk: int | None = None) -> tuple[Any, Any, Any, Any]:
    """The pairwise sums behind counts, means, variances and pairwise-complete Pearson.

    With ``d = (x - shift) / scale`` (per row of the ``(columns x rows)`` matrix ``X``), set to 0 where
    ``x`` is not finite, and ``m`` the finite mask, returns ``d d'``, ``d m'``, ``d^2 m'`` and ``m m'``
    as float64 ``(columns x columns)`` matrices. Rows are taken ``chunk`` at a time through reused
    buffers (bounded memory); each block costs a few element-wise passes and four small matrix products.
    """
    p, n = X.shape
    f64 = xp.float64
    sums = [xp.zeros((p, p), dtype=f64) for _ in range(4)]
    if n == 0:
        return tuple(sums)  # type: ignore[return-value]
    c = min(int(chunk or n), n)
    D, M, D2 = (xp.empty((p, c), dtype=work) for _ in range(3))
    bad = xp.empty((p, c), dtype=bool)
    inv = (1.0 / scale).astype(work)[:, None]
    off = (shift / scale).astype(work)[:, None]
    with _single_threaded_blas(xp):
        for a in range(0, n, c):
            w = min(c, n - a)
            d, m, d2, bd = D[:, :w], M[:, :w], D2[:, :w], bad[:, :w]
            xp.multiply(X[:, a:a + w], inv, out=d)
            d -= off
            xp.isfinite(d, out=bd)
            xp.logical_not(bd, out=bd)
            if bool(bd.any()):
                xp.copyto(d, 0, where=bd)
                xp.logical_not(bd, out=bd)
                xp.copyto(m, bd)
                xp.multiply(d, d, out=d2)
                sums[1] += (d @ m.T).astype(f64)
                sums[2] += (d2 @ m.T).astype(f64)
                sums[3] += (m @ m.T).astype(f64)
            else:  # every value finite: the mask products are row sums
                sums[1] += d.sum(axis=1, dtype=f64)[:, None]
                xp.multiply(d, d, out=d2)
                sums[2] += d2.sum(axis=1, dtype=f64)[:, None]
                sums[3] += float(w)
            sums[0] += (d @ d.T).astype(f64)
    return tuple(sums)  # type: ignore[return-value]


def _single_threaded_blas(xp: ModuleType) -> Any:
    """The block products are tiny (columns x columns): BLAS threads only contend for the cores."""
    import contextlib

    if xp is not np:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _pearson_from_sums(xp: ModuleType, dd: Any, dm: Any, d2m: Any, mm: Any) -> Any:
    """Pairwise-complete Pearson correlation from :func:`_moment_sums` totals (NaN where undefined)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        nn = xp.maximum(mm, 1)
        sa, sb = dm, dm.T
        cov = dd - sa * sb / nn
        va = d2m - sa * sa / nn
        vb = d2m.T - sb * sb / nn
        den = xp.sqrt(xp.maximum(va, 0) * xp.maximum(vb, 0))
        r = xp.clip(xp.where((mm > 1) & (den > 0), cov / xp.where(den > 0, den, 1), xp.nan), -1.0, 1.0)
    i = xp.arange(r.shape[0])
    r[i, i] = xp.where(xp.isnan(r[i, i]), xp.nan, 1.0)
    return r


def _rank_rows(xp: ModuleType, S: Any, max_elements: int = 1 << 20) -> Any:
    """Average ranks (1-based, ties averaged) along each row of ``S``; NaN stays NaN.

    Ranked a block of rows at a time (bounded temporaries); float64 ranks, float32 beyond 4M columns.
    """
    p, s = S.shape
    R = xp.empty((p, s), dtype=xp.float64 if s <= (1 << 22) else xp.float32)
    if s == 0:
        return R
    step = max(1, max_elements // max(s, 1))
    for a in range(0, p, step):
        R[a:a + step] = _rank_block(xp, S[a:a + step])
    return R


def _rank_block(xp: ModuleType, S: Any) -> Any:
    """Average ranks along each row, vectorised over the block.

    Values are ordered by their float32 image: each is packed with its position into one 64-bit key
    (order-preserving float bits high, position low), so a plain sort replaces the slower argsort.
    Rows without ties get ranks 1..n directly; only rows with ties average them.
    """
    p, s = S.shape
    f = S.astype(xp.float32)
    f += xp.float32(0)  # -0.0 -> +0.0
    nan = xp.isnan(f)
    bits = f.view(xp.uint32)
    key = bits ^ ((bits >> xp.uint32(31)) * xp.uint32(0x7FFFFFFF) | xp.uint32(0x80000000))
    key[nan] = xp.uint32(0xFFFFFFFF)  # every NaN last
    packed = key.astype(xp.uint64)
    del key, bits
    packed <<= xp.uint64(32)
    packed |= xp.arange(s, dtype=xp.uint64)[None, :]
    packed.sort(axis=1)
    order = (packed & xp.uint64(0xFFFFFFFF)).astype(xp.int64)
    packed >>= xp.uint64(32)  # the sorted keys
    tie = (packed[:, 1:] == packed[:, :-1]) & (packed[:, 1:] != xp.uint64(0xFFFFFFFF))
    ranks = xp.broadcast_to(xp.arange(1, s + 1, dtype=xp.float64), (p, s)).copy()
    tied = xp.flatnonzero(tie.any(axis=1))
    if int(tied.size):
        t = int(tied.size)
        flat = packed[tied].ravel()
        new = xp.ones(t * s, dtype=bool)
        new[1:] = flat[1:] != flat[:-1]
        new[::s] = True
        gid = xp.cumsum(new) - 1
        starts = xp.flatnonzero(new)
        ends = xp.concatenate([starts[1:], xp.asarray([t * s], dtype=starts.dtype)]) - 1
        avg = (starts + ends) / 2.0 - (starts // s) * s + 1.0
        ranks[tied] = avg[gid].reshape(t, s)
    order += (xp.arange(p, dtype=xp.int64) * s)[:, None]
    R = xp.empty((p, s), dtype=xp.float64)
    R.ravel()[order.ravel()] = ranks.ravel()
    R[nan] = xp.nan
    return R


def _searchsorted_rows(xp: ModuleType, X: Any, values: Any, side: str, hi: Any) -> Any:
    """Batched ``searchsorted``: for each row ``j`` of the row-sorted ``X``, the insertion points of
    ``values[j]`` within ``X[j, :hi[j]]``. One vectorised binary search for every row and value."""
    p, m = values.shape
    n = X.shape[1]
    lo = xp.zeros((p, m), dtype=xp.int64)
    hi = xp.broadcast_to(xp.asarray(hi, dtype=xp.int64)[:, None], (p, m)).copy()
    if n == 0:
        return lo
    for _ in range(int(n).bit_length() + 1):
        active = lo < hi
        mid = (lo + hi) // 2
        a = xp.take_along_axis(X, xp.minimum(mid, n - 1), axis=1)
        right = (a < values) if side == "left" else (a <= values)
        lo = xp.where(active & right, mid + 1, lo)
        hi = xp.where(active & ~right, mid, hi)
    return lo


def _sorted_row_stats(xp: ModuleType, X: Any, bins: int) -> dict[str, Any]:
    """Order statistics of every row of ``X`` (each row sorted ascending, NaN last)."""
    from engine.backend import to_numpy

    p, n = X.shape
    dt = X.dtype
    inf = xp.full((p, 1), xp.inf, dtype=dt)
    cnt = _searchsorted_rows(xp, X, inf, "right", xp.full(p, n))[:, 0]  # values that are not NaN
    zero = xp.zeros((p, 1), dtype=dt)
    left = _searchsorted_rows(xp, X, xp.concatenate([inf, zero], axis=1), "left", cnt)
    right = _searchsorted_rows(xp, X, xp.concatenate([-inf, zero], axis=1), "right", cnt)
    fin_lo, fin_hi = right[:, 0], left[:, 0]  # finite values are X[j, fin_lo:fin_hi]
    last = xp.maximum(cnt - 1, 0)
    ends = xp.take_along_axis(X, xp.stack([xp.zeros_like(cnt), last, xp.minimum(fin_lo, last),
                                           xp.maximum(fin_hi - 1, 0), cnt // 2], axis=1), axis=1)

    # quantiles, 'linear' interpolation as numpy.quantile
    q = xp.asarray([v for _, v in QUANTILES], dtype=xp.float64)
    virt = q[None, :] * last[:, None].astype(xp.float64)
    below = xp.floor(virt).astype(xp.int64)
    above = xp.minimum(below + 1, last[:, None])
    gamma = virt - below
    lo_v = xp.take_along_axis(X, below, axis=1).astype(xp.float64)
    hi_v = xp.take_along_axis(X, above, axis=1).astype(xp.float64)
    diff = hi_v - lo_v
    with np.errstate(invalid="ignore"):
        quant = xp.where(gamma >= 0.5, hi_v - diff * (1 - gamma), lo_v + diff * gamma)

    # histogram edges exactly as numpy.histogram (host: a few numbers per column)
    h_ends = to_numpy(ends)
    finite = to_numpy(fin_hi - fin_lo)
    edges = np.zeros((p, bins + 1), dtype=dt)
    for j in range(p):
        if finite[j]:
            edges[j] = _histogram_edges(h_ends[j, 2], h_ends[j, 3], bins, np.dtype(dt))
    e = xp.asarray(edges)
    dom = ends[:, 4:5]
    left2 = _searchsorted_rows(xp, X, xp.concatenate([e[:, :bins], dom], axis=1), "left", cnt)
    right2 = _searchsorted_rows(xp, X, xp.concatenate([e[:, bins:], dom], axis=1), "right", cnt)
    upper = xp.concatenate([left2[:, 1:bins], right2[:, :1]], axis=1)
    hist = upper - left2[:, :bins]
    return {
        "count": cnt, "min": ends[:, 0], "max": ends[:, 1], "quantiles": quant,
        "zeros": right[:, 1] - left[:, 1], "negatives": left[:, 1],
        "infinite": fin_lo + (cnt - fin_hi), "finite": fin_hi - fin_lo, "fin_lo": fin_lo, "fin_hi": fin_hi,
        "edges": e, "hist": hist,
        "dominant_value": ends[:, 4], "dominant_count": xp.where(cnt > 0, right2[:, 1] - left2[:, bins], 0),
    }


def _histogram_edges(lo: Any, hi: Any, bins: int, dtype: np.dtype) -> np.ndarray:
    first, last = dtype.type(lo), dtype.type(hi)
    if first == last:
        first, last = first - 0.5, last + 0.5
    bin_type = np.result_type(first, last, np.empty(0, dtype=dtype))
    return np.linspace(first, last, bins + 1, endpoint=True, dtype=bin_type)


# ------------------------------------------------------------------------------------------------
# categorical, text, id, binary target; datetimes
# ------------------------------------------------------------------------------------------------
def _factorize(s: Any) -> tuple[np.ndarray, Any]:
    import pandas as pd

    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy(), s.cat.categories
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return np.asarray(codes), uniques


def _categorical_stats(s: Any, top_k: int) -> dict[str, Any]:
    codes, uniques = _factorize(s)
    k = len(uniques)
    counts = np.bincount(codes.astype(np.intp, copy=False) + 1, minlength=k + 1)
    missing, counts = int(counts[0]), counts[1:]
    n = int(codes.size)
    present = n - missing
    order = _order_by_count(counts)
    top = order[:top_k]
    top = top[counts[top] > 0]
    return {
        "count": present,
        "missing": {"count": missing, "share": missing / n if n else 0.0},
        "distinct": int(np.count_nonzero(counts)),
        "top": [{"value": _label(uniques[i]), "count": int(counts[i]),
                 "share": counts[i] / present if present else None} for i in top],
        "top_share": counts[top[0]] / present if present and top.size else None,
        "_codes": codes,
        "_order": order,
        "_counts": counts,
        "_labels": uniques,
    }


def _order_by_count(counts: np.ndarray) -> np.ndarray:
    """Codes by count descending, ties in order of first appearance (deterministic)."""
    return np.argsort(-counts, kind="stable")


def _label(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v)) if abs(v) < 2**53 else str(v)
    return str(v)


def _text_lengths(s: Any) -> dict[str, Any]:
    lengths = s.astype("str").str.len().to_numpy(dtype=np.float64, na_value=np.nan)
    ok = ~np.isnan(lengths)
    if not ok.any():
        return {"length": None}
    v = lengths[ok]
    return {"length": {"min": int(v.min()), "mean": float(v.mean()), "max": int(v.max())}}


def _datetime_values(s: Any) -> np.ndarray:
    """A column as naive UTC ``datetime64`` values (unparseable or missing -> NaT)."""
    import pandas as pd

    if not pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = pd.to_datetime(s, errors="coerce", utc=True)
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.to_numpy()


def _datetime_stats(s: Any) -> dict[str, Any]:
    import pandas as pd

    v = _datetime_values(s)
    nat = np.isnat(v)
    n = int(v.size)
    missing = int(nat.sum())
    vals = np.sort(v[~nat])
    entry: dict[str, Any] = {
        "count": int(vals.size),
        "missing": {"count": missing, "share": missing / n if n else 0.0},
        "distinct": int(np.count_nonzero(vals[1:] != vals[:-1]) + 1) if vals.size else 0,
        "min": None, "max": None, "histogram": None,
    }
    if vals.size:
        entry["min"] = str(pd.Timestamp(vals[0]))
        entry["max"] = str(pd.Timestamp(vals[-1]))
        months = vals.astype("datetime64[M]").astype(np.int64)
        first, span = int(months[0]), int(months[-1] - months[0]) + 1
        if span <= MAX_MONTH_BINS:
            counts = np.bincount(months - first, minlength=span)
            labels = [str(np.datetime64(first + i, "M")) for i in range(span)]
            entry["histogram"] = {"unit": "month", "labels": labels, "counts": counts.tolist()}
        else:
            years = vals.astype("datetime64[Y]").astype(np.int64)
            y0 = int(years[0])
            counts = np.bincount(years - y0)
            entry["histogram"] = {"unit": "year", "labels": [str(1970 + y0 + i) for i in range(counts.size)],
                                  "counts": counts.tolist()}
    return entry


# ------------------------------------------------------------------------------------------------
# target
# ------------------------------------------------------------------------------------------------
def _binary_labels(codes: np.ndarray, target_stats: dict[str, Any]) -> np.ndarray:
    """0/1 labels for rank statistics (1 = the least frequent label; AUC is symmetric), -1 where missing."""
    counts = target_stats["_counts"]
    present = np.flatnonzero(counts)
    one = int(present[np.argsort(counts[present], kind="stable")[0]]) if present.size else -2
    return np.where(codes >= 0, (codes == one).astype(np.int8), np.int8(-1))


def _binary_balance(ts: dict[str, Any]) -> dict[str, Any]:
    counts, labels = ts["_counts"], ts["_labels"]
    order = [i for i in ts["_order"] if counts[i] > 0]
    total = int(counts.sum())
    bal = [{"value": _label(labels[i]), "count": int(counts[i]), "share": counts[i] / total} for i in order]
    minority = bal[-1]["count"] if bal else 0
    majority = bal[0]["count"] if bal else 0
    return {"balance": bal, "minority_share": minority / total if total else None,
            "minority_ratio": minority / majority if majority else None}


def _regression_balance(stats: dict[str, Any]) -> dict[str, Any]:
    keep = ("count", "mean", "std", "min", "max", "quantiles", "histogram")
    return {"distribution": {k: stats[k] for k in keep}}


def _binary_target_association(num: dict[str, Any], y_sample: np.ndarray, codes: dict[Any, np.ndarray],
                               y_full: np.ndarray, labelled: list[Any], target: Any,
                               opt: dict[str, Any]) -> list[dict[str, Any]]:
    from engine.backend import to_numpy

    rows: list[dict[str, Any]] = []
    if num["cols"]:
        R = num["ranks"]
        xp = _namespace(R)
        y = xp.asarray((y_sample == 1).astype(np.float64))
        p, s = R.shape
        pos, cnt, rank_pos = (xp.zeros(p, dtype=xp.float64) for _ in range(3))
        step = max(1, (1 << 20) // max(s, 1))
        for a in range(0, p, step):  # float64 products, a block of columns at a time
            valid = ~xp.isnan(R[a:a + step])
            V = valid.astype(xp.float64)
            pos[a:a + step] = V @ y
            cnt[a:a + step] = V.sum(axis=1)
            rank_pos[a:a + step] = xp.where(valid, R[a:a + step], 0).astype(xp.float64) @ y
        neg = cnt - pos
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = to_numpy((rank_pos - pos * (pos + 1) / 2) / (pos * neg))
        for j, c in enumerate(num["cols"]):
            a = float(auc[j])
            score = max(a, 1 - a) if np.isfinite(a) else None
            rows.append({"column": str(c), "kind": "numeric", "metric": "roc_auc", "value": score,
                         "leakage": bool(score is not None and score >= opt["leakage_auc"])})
    ok = y_full >= 0
    every = bool(ok.all())
    y_ok = y_full if every else y_full[ok]
    for c in labelled:
        if c == target:
            continue
        auc, purity = _category_auc(codes[c] if every else codes[c][ok], y_ok, opt["leakage_min_support"])
        rows.append({"column": str(c), "kind": "categorical", "metric": "roc_auc", "value": auc,
                     "purity": purity, "leakage": bool(auc is not None and auc >= opt["leakage_auc"])})
    return rows


def _category_table(codes: np.ndarray, y: np.ndarray | None = None, weights: np.ndarray | None = None,
                    min_support: int = 1) -> np.ndarray:
    """Per category (missing first): counts, and the count of ``y == 1`` or the sum of ``weights``.

    Categories seen fewer than ``min_support`` times are pooled into one extra last row.
    Returns a ``(groups, 2)`` float array.
    """
    k = int(codes.max()) + 2 if codes.size else 1
    if y is not None:  # one bincount for (category, label)
        joint = codes * 2
        joint += y
        joint += 2
        t = np.bincount(joint, minlength=2 * k).astype(np.float64).reshape(k, 2)
        table = np.stack([t.sum(axis=1), t[:, 1]], axis=1)
    else:
        c1 = codes + 1
        table = np.stack([np.bincount(c1, minlength=k).astype(np.float64),
                          np.bincount(c1, weights=weights, minlength=k)], axis=1)
    rare = table[:, 0] < min_support
    rare[0] = False
    if rare.any():
        table = np.concatenate([table[~rare], table[rare].sum(axis=0, keepdims=True)])
    return table[table[:, 0] > 0]


def _category_auc(codes: np.ndarray, y: np.ndarray, min_support: int) -> tuple[float | None, float | None]:
    """ROC AUC of scoring each row by its category's positive rate, and the majority-class purity."""
    if codes.size == 0:
        return None, None
    table = _category_table(codes, y=y, min_support=min_support)
    tot, pos = table[:, 0], table[:, 1]
    P, N = pos.sum(), tot.sum() - pos.sum()
    purity = float(np.maximum(pos, tot - pos).sum() / tot.sum())
    if P == 0 or N == 0:
        return None, purity
    uniq, inv = np.unique(pos / tot, return_inverse=True)
    p_u = np.bincount(inv, weights=pos, minlength=uniq.size)
    n_u = np.bincount(inv, weights=tot - pos, minlength=uniq.size)
    below = np.concatenate([[0.0], np.cumsum(n_u)[:-1]])
    auc = float(((p_u * below).sum() + 0.5 * (p_u * n_u).sum()) / (P * N))
    return max(auc, 1 - auc), purity


def _regression_target_association(num: dict[str, Any], codes: dict[Any, np.ndarray], t_vals: np.ndarray,
                                   labelled: list[Any], target: Any, opt: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cols = num["cols"]
    sp = num["spearman"]
    t = cols.index(target)
    for j, c in enumerate(cols):
        if c == target:
            continue
        r = float(sp[t, j])
        v = abs(r) if np.isfinite(r) else None
        rows.append({"column": str(c), "kind": "numeric", "metric": "spearman", "value": v, "signed": r,
                     "leakage": bool(v is not None and v >= opt["leakage_corr"])})
    ok = np.isfinite(t_vals)
    for c in labelled:
        eta = _correlation_ratio(codes[c][ok], t_vals[ok], opt["leakage_min_support"])
        rows.append({"column": str(c), "kind": "categorical", "metric": "correlation_ratio", "value": eta,
                     "leakage": bool(eta is not None and eta >= opt["leakage_corr"])})
    return rows


def _correlation_ratio(codes: np.ndarray, y: np.ndarray, min_support: int) -> float | None:
    """Correlation ratio (eta): square root of the share of the target's variance between categories."""
    if codes.size < 2:
        return None
    dev = y - y.mean()
    ss_total = float(np.dot(dev, dev))
    if ss_total <= 0:
        return None
    table = _category_table(codes, weights=dev, min_support=min_support)
    ss_between = float((table[:, 1] ** 2 / table[:, 0]).sum())
    return float(np.sqrt(min(ss_between / ss_total, 1.0)))


# ------------------------------------------------------------------------------------------------
# associations between categoricals
# ------------------------------------------------------------------------------------------------
def _associations(cols: list[Any], codes: dict[Any, np.ndarray], orders: dict[Any, np.ndarray],
                  sample: np.ndarray, max_levels: int) -> dict[str, Any]:
    """Cramér's V for every pair of categorical columns on the sample rows (the rarest levels pooled)."""
    lumped = {}
    for c in cols:
        order = orders[c]
        k = order.size
        lut = np.full(k, min(k, max_levels), dtype=np.intp)
        keep = order[:max_levels]
        lut[keep] = np.arange(keep.size)
        sc = codes[c][sample]
        lumped[c] = (np.where(sc >= 0, lut[np.maximum(sc, 0)], -1), min(k, max_levels) + 1)
    m = len(cols)
    v = np.full((m, m), np.nan)
    for i in range(m):
        a, ka = lumped[cols[i]]
        v[i, i] = 1.0 if cramers_v(_contingency(a, a, ka, ka)) is not None else np.nan
        for j in range(i + 1, m):
            b, kb = lumped[cols[j]]
            r = cramers_v(_contingency(a, b, ka, kb))
            v[i, j] = v[j, i] = np.nan if r is None else r
    return {"columns": [str(c) for c in cols], "cramers_v": v, "sample_rows": int(sample.size),
            "max_levels": max_levels}


def _contingency(a: np.ndarray, b: np.ndarray, ka: int, kb: int) -> np.ndarray:
    ok = (a >= 0) & (b >= 0)
    return np.bincount(a[ok] * kb + b[ok], minlength=ka * kb).reshape(ka, kb)


def cramers_v(table: np.ndarray) -> float | None:
    """Cramér's V of a contingency table (no bias correction); ``None`` when undefined.

    Empty rows and columns are dropped; a table with fewer than two rows or columns left has no V.

    Examples
    --------
    >>> cramers_v(np.array([[10, 0], [0, 10]]))
    1.0
    """
    t = np.asarray(table, dtype=np.float64)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    if t.ndim != 2 or min(t.shape) < 2:
        return None
    total = t.sum()
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / total
    chi2 = float(((t - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / (total * (min(t.shape) - 1))))


# ------------------------------------------------------------------------------------------------
# duplicate rows
# ------------------------------------------------------------------------------------------------
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def _mix(h: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Fold ``key`` (uint64 per row) into the row hashes ``h`` (splitmix64 finaliser)."""
    z = (h ^ key) * _M1
    z ^= z >> np.uint64(30)
    z *= _M2
    z ^= z >> np.uint64(27)
    z *= _M3
    z ^= z >> np.uint64(31)
    return z


def _row_key(frame: Any, col: Any, codes: dict[Any, np.ndarray], dates: list[Any],
             rows: np.ndarray | None) -> np.ndarray:
    if col in codes:
        c = codes[col] if rows is None else codes[col][rows]
        return c.astype(np.int64).view(np.uint64)
    if col in dates:
        v = _datetime_values(frame[col])
        return (v if rows is None else v[rows]).view(np.int64).view(np.uint64)
    v = _float_values(frame[col])
    v = np.asarray(v if rows is None else v[rows], dtype=np.float64) + 0.0  # -0.0 -> 0.0
    v[np.isnan(v)] = np.nan  # one NaN bit pattern
    return v.view(np.uint64)


def _duplicate_rows(frame: Any, order: list[Any], codes: dict[Any, np.ndarray], dates: list[Any]) -> int:
    """Rows equal to an earlier row in every column (missing equals missing), as ``pandas.duplicated``.

    Row hashes are built one column at a time (``order``: most distinct values first); rows whose
    partial hash is unique cannot be duplicates and are dropped, so usually only a few candidate rows
    are left after the first columns. Counted from 64-bit hashes: a false match is astronomically rare.
    """
    n = len(frame)
    if n < 2:
        return 0
    rows: np.ndarray | None = None
    h = np.zeros(n, dtype=np.uint64)
    for col in order:
        h = _mix(h, _row_key(frame, col, codes, dates, rows))
        shared = _shared(h)
        if shared is None:
            return 0
        if not shared.all():
            h = h[shared]
            rows = np.flatnonzero(shared) if rows is None else rows[shared]
    s = np.sort(h)
    return int(np.count_nonzero(s[1:] == s[:-1]))


def _shared(h: np.ndarray) -> np.ndarray | None:
    """Mask of the entries of ``h`` whose value occurs more than once (``None``: no such entry)."""
    s = np.sort(h)
    eq = s[1:] == s[:-1]
    if not eq.any():
        return None
    vals = np.unique(s[1:][eq])
    i = np.searchsorted(vals, h)
    i[i == vals.size] = 0
    return vals[i] == h


# ------------------------------------------------------------------------------------------------
# warnings
# ------------------------------------------------------------------------------------------------
def _warnings(profile: dict[str, Any], opt: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    target = profile["target"]["name"]

    def add(kind: str, column: str | None, message: str, value: Any = None) -> None:
        out.append({"type": kind, "column": column, "message": message, "value": value})

    for e in profile["columns"]:
        name, kind = e["name"], e["kind"]
        share = e["missing"]["share"]
        if share > opt["heavy_missing"]:
            add("heavy_missing", name, f"column {name!r}: {share:.1%} of values are missing "
                f"(above profile.heavy_missing={opt['heavy_missing']:g})", share)
        if name == target or kind == "id":
            continue
        if e["distinct"] <= 1:
            what = "has no values" if e["count"] == 0 else "holds a single value"
            add("constant", name, f"column {name!r} {what}; it carries no information", e["distinct"])
            continue
        top = e.get("top_share") if kind != "numeric" else e.get("dominant_share")
        if top is not None and top >= opt["near_constant_share"]:
            add("near_constant", name, f"column {name!r}: one value covers {top:.1%} of the rows "
                f"(profile.near_constant_share={opt['near_constant_share']:g})", top)
        if kind == "categorical" and e["distinct"] > opt["high_cardinality"]:
            add("high_cardinality", name, f"column {name!r}: {e['distinct']:,} distinct categories "
                f"(above profile.high_cardinality={opt['high_cardinality']})", e["distinct"])
    t = profile["target"]
    if t["task"] == "binary" and t.get("minority_ratio") is not None and t["minority_ratio"] < opt["imbalance_ratio"]:
        add("imbalance", target, f"target {target!r}: the minority class is {t['minority_share']:.2%} of the "
            f"rows ({t['minority_ratio']:.3f} per majority row, below profile.imbalance_ratio="
            f"{opt['imbalance_ratio']:g})", t["minority_ratio"])
    for a in profile["target_association"]:
        if a["leakage"]:
            add("leakage", a["column"], f"column {a['column']!r} alone predicts the target almost perfectly "
                f"({a['metric']} {a['value']:.4f}): check that it is known before the outcome", a["value"])
    return out


# ------------------------------------------------------------------------------------------------
# JSON
# ------------------------------------------------------------------------------------------------
def _namespace(a: Any) -> ModuleType:
    from engine.backend import get_namespace

    return get_namespace(a)


def _clean(obj: Any, digits: int | None) -> Any:
    """Plain Python types, floats rounded to ``digits`` significant digits (``None``: kept exactly),
    NaN/inf -> None. float32 statistics carry about 7 significant digits; more would be noise."""
    if isinstance(obj, dict):
        return {str(k): _clean(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v, digits) for v in obj]
    if hasattr(obj, "__array__") and not isinstance(obj, (np.generic,)):
        from engine.backend import to_numpy

        return _clean(to_numpy(obj).tolist(), digits)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if not np.isfinite(f):
            return None
        return f if digits is None else float(f"{f:.{digits}g}")
    return obj
