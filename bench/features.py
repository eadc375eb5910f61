"""Feature pipeline: Trident fit+transform beside a hand-written pandas pipeline doing the same steps.

Data (seeded): ``--rows`` rows of 10 float32 columns (5% NaN), 3 string columns of ~1,000 levels each
(Zipf-like frequencies, 1% missing; pandas' default Arrow-backed ``str`` dtype, as read from Parquet
or CSV) and 1 datetime column with times of day.

Steps, identical on both sides: numeric columns and the date parts (year, month, day of week, day of
year, hour, days since epoch) are median-imputed with a missing indicator, clipped at the 0.5% / 99.5%
quantiles and standardised; ``cat0`` is one-hot encoded (levels with >= 1% of the rows, at most 20,
the rest -> other), ``cat1`` is hashed into 32 indicator buckets, ``cat2`` is frequency encoded.
The result is one float32 matrix. Trident also screens for constant / duplicate / correlated
features (the baseline does not) and fits its quantiles on a 200,000-row sample (the baseline on
every row).

Timed: fit + transform of the training frame (Trident: ``FeaturePipeline.fit_transform``; baseline:
every statistic then every column, then ``pd.concat``); then the apply step alone on the same rows;
then the host part of the GPU path (:func:`gpu_host_part`: columns converted, strings dictionary-encoded
once), which a GPU cannot speed up: pandas' time over it bounds the GPU path's speed-up on this CPU.
The hashing-encoder row times bucketing one string column: Trident's Numba twin on the column's Arrow
buffers (no dictionary), and the baseline's ``pd.util.hash_array``.

``--backend gpu`` (a CUDA machine with CuPy): the same frame at 20M rows by default; Trident's
``fit_transform(..., xp=cupy)`` converts the columns on the host once (strings dictionary-encoded, in
parallel threads), moves them to the GPU and computes the full-data statistics and the matrix there
(only the 200,000-row sample's quantiles are host work), timed beside the pandas baseline and
Trident's CPU path in the same run.
"""
from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import numpy as np

from bench.common import fmt_bytes, measure, print_table, write_results

N_NUMERIC = 10
N_LEVELS = 1000
CLIP = (0.005, 0.995)
ONEHOT_MAX = 20
RARE_SHARE = 0.01
BUCKETS = 32
DATE_PARTS = ["year", "month", "dayofweek", "dayofyear", "hour", "epoch_days"]

CONFIG: dict[str, Any] = {
    "impute": "median", "missing_indicators": True, "clip": "quantile", "clip_quantiles": list(CLIP),
    "scaler": "standard", "onehot_max_levels": ONEHOT_MAX, "rare_min_share": RARE_SHARE,
    "encoders": {"cat0": "onehot", "cat1": "hashing", "cat2": "frequency"}, "hashing_buckets": BUCKETS,
    "date_parts": DATE_PARTS,
}


def make_frame(rows: int, seed: int = 0) -> Any:
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for i in range(N_NUMERIC):
        x = (rng.standard_normal(rows, dtype=np.float32) * (i + 1) + i).astype(np.float32)
        x[rng.random(rows) < 0.05] = np.nan
        cols[f"x{i}"] = x
    p = 1.0 / np.arange(1, N_LEVELS + 1) ** 1.1
    p /= p.sum()
    for k in range(3):
        levels = np.array([f"c{k}_level_{i:04d}" for i in range(N_LEVELS)], dtype=object)
        v = levels[rng.choice(N_LEVELS, rows, p=p)]
        v[rng.random(rows) < 0.01] = None
        cols[f"cat{k}"] = pd.Series(v, dtype="str")
    cols["when"] = pd.Series(pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365 * 86400, rows),
                                                                          unit="s"))
    return pd.DataFrame(cols)


KINDS = {**{f"x{i}": "numeric" for i in range(N_NUMERIC)}, "cat0": "categorical", "cat1": "categorical",
         "cat2": "categorical", "when": "datetime"}


# ------------------------------------------------------------------------------- pandas baseline
def pandas_baseline(df: Any) -> np.ndarray:
    """The same steps, written the way a pandas user would: per-column statistics, then concat."""
    import pandas as pd

    parts: list[Any] = []
    d = df["when"]
    numeric = {c: df[c] for c in df.columns if c.startswith("x")}
    numeric.update({
        "when__year": d.dt.year.astype("float64"), "when__month": d.dt.month.astype("float64"),
        "when__dayofweek": d.dt.dayofweek.astype("float64"), "when__dayofyear": d.dt.dayofyear.astype("float64"),
        "when__hour": d.dt.hour.astype("float64"),
        "when__epoch_days": ((d - pd.Timestamp("1970-01-01")).dt.days).astype("float64"),
    })
    for name, s in numeric.items():
        miss = s.isna()
        med = s.median()
        lo, hi = s.quantile(list(CLIP))
        v = s.fillna(med).clip(lo, hi)
        v = (v - v.mean()) / v.std(ddof=0)
        parts.append(v.astype("float32").rename(name))
        if miss.any():
            parts.append(miss.astype("float32").rename(f"{name}__missing"))
    c0 = df["cat0"].fillna("__missing__")
    share = c0.value_counts(normalize=True)
    top = share[share >= RARE_SHARE].index[:ONEHOT_MAX]
    c0 = c0.where(c0.isin(top), "__other__")
    parts.append(pd.get_dummies(c0, prefix="cat0", prefix_sep="=", dtype="float32"))
    c1 = df["cat1"].fillna("__missing__")
    bucket = pd.Series(pd.util.hash_array(c1.to_numpy(dtype=object)) % BUCKETS, index=df.index)
    parts.append(pd.get_dummies(pd.Categorical(bucket, categories=range(BUCKETS)), prefix="cat1__hash",
                                prefix_sep="", dtype="float32").set_index(df.index))
    c2 = df["cat2"].fillna("__missing__")
    parts.append(c2.map(c2.value_counts(normalize=True)).astype("float32").rename("cat2__freq"))
    return pd.concat(parts, axis=1).to_numpy(dtype=np.float32)


# ------------------------------------------------------------------------------------- hashing
def _cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed(fn: Any, repeat: int = 3) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that call) over ``repeat`` calls."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        c0, t0 = _cpu_seconds(), time.perf_counter()
        fn()
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        best = min(best, (wall, cpu))
    return best


def hashing_rates(df: Any) -> list[list[Any]]:
    """Values/s of the hashing encoder (string -> bucket id) on one column, three ways."""
    import pandas as pd

    from engine.features.frame import _arrow_strings
    from engine.features.runtime import hash_strings
    from kernels.hashing import hash_buckets, hash_bytes

    col = df["cat1"]
    n = len(col)
    rows = []
    sc = _arrow_strings(col)
    if sc is not None:
        hash_buckets(sc.data, sc.offsets[:1000], BUCKETS)  # load the compiled kernel
        wall, cpu = _timed(lambda: hash_buckets(sc.data, sc.offsets, BUCKETS))
        rows.append(["Trident CPU twin on the column's Arrow buffers (every value hashed)", n / wall, wall, cpu])
    cat = col.astype("category")  # a dictionary-encoded column, as Parquet often delivers it
    codes = cat.cat.codes.to_numpy()
    levels = np.asarray(cat.cat.categories, dtype=object)

    def by_dictionary() -> np.ndarray:
        table = (hash_strings(levels, 0, hash_bytes) % np.uint32(BUCKETS)).astype(np.int64)
        return table[codes]

    wall, cpu = _timed(by_dictionary)
    rows.append([f"Trident on a dictionary-encoded column (hash {len(levels)} levels, take by codes)", n / wall, wall,
                 cpu])
    obj = col.fillna("__missing__").to_numpy(dtype=object)
    wall, cpu = _timed(lambda: pd.util.hash_array(obj) % BUCKETS, repeat=1)
    rows.append(["pandas baseline: pd.util.hash_array(values) % buckets", n / wall, wall, cpu])
    return rows


def _load() -> str:
    try:
        import os

        return "load average (1 min) %.1f on %d cores" % (os.getloadavg()[0], os.cpu_count() or 0)
    except OSError:  # pragma: no cover
        return "load average unknown"


# --------------------------------------------------------------------------------------- main
def _trident_fit_transform(df: Any) -> tuple[Any, np.ndarray]:
    from engine.features import FeaturePipeline

    fp = FeaturePipeline(**CONFIG)
    X = fp.fit_transform(df, kinds=KINDS)
    return fp, X


def gpu_host_part(df: Any) -> Any:
    """The host work of ``fit_transform(..., xp=cupy)`` over every row: the columns converted and the
    strings dictionary-encoded once (the rest reads the device copy or the fixed-size sample)."""
    from engine.features import runtime as rt
    from engine.features.frame import to_columns

    return rt.prepare_columns(to_columns(df, KINDS), list(KINDS.items()))


def _warm_up() -> None:
    _trident_fit_transform(make_frame(2000, seed=1))


def run_cpu(rows: int, seed: int, repeat: int) -> dict[str, Any]:
    print(f"building {rows:,} rows ...", flush=True)
    df = make_frame(rows, seed)
    gc.collect()
    _warm_up()
    base = measure(lambda: pandas_baseline(df), repeat=repeat)
    Xb = base.value
    base.value = None
    del Xb
    gc.collect()
    tri = measure(lambda: _trident_fit_transform(df), repeat=repeat)
    fp, X = tri.value
    tri.value = None
    ncol = X.shape[1]
    del X
    gc.collect()
    app = measure(lambda: fp.transform(df), repeat=repeat)
    app.value = None
    gc.collect()
    host = measure(lambda: gpu_host_part(df), repeat=repeat)
    host.value = None
    gc.collect()
    hrows = hashing_rates(df)
    table = [
        ["pandas baseline: fit + transform", rows / base.seconds, base.seconds, fmt_bytes(base.peak_bytes), 1.0],
        ["Trident: fit_transform", rows / tri.seconds, tri.seconds, fmt_bytes(tri.peak_bytes),
         base.seconds / tri.seconds],
        ["Trident: transform (fitted)", rows / app.seconds, app.seconds, fmt_bytes(app.peak_bytes),
         base.seconds / app.seconds],
        ["GPU path's host part (convert, encode strings once): bounds its speed-up", rows / host.seconds,
         host.seconds, "-", base.seconds / host.seconds],
    ]
    text = print_table(f"features, {rows:,} rows -> {ncol} float32 features (CPU; {_load()})",
                       ["pipeline", "rows/s", "seconds", "peak memory", "speed-up vs pandas"], table)
    htext = print_table(f"hashing encoder, {rows:,} string values -> {BUCKETS} buckets ({_load()})",
                        ["path", "values/s (wall)", "wall s", "CPU s"], hrows)
    return {"rows": rows, "features": ncol, "table": text, "hashing": htext,
            "results": {"pandas_s": base.seconds, "trident_fit_transform_s": tri.seconds,
                        "trident_transform_s": app.seconds, "speedup_fit_transform": base.seconds / tri.seconds,
                        "gpu_host_part_s": host.seconds,
                        "hashing_values_per_s": {r[0]: r[1] for r in hrows},
                        "peak_bytes": {"pandas": base.peak_bytes, "trident": tri.peak_bytes}}}


def run_gpu(rows: int, seed: int, repeat: int) -> dict[str, Any]:
    import cupy as cp

    from engine.features import FeaturePipeline

    print(f"building {rows:,} rows ...", flush=True)
    df = make_frame(rows, seed)
    _warm_up()

    def gpu_fit_transform() -> Any:
        fp = FeaturePipeline(**CONFIG)
        X = fp.fit_transform(df, kinds=KINDS, xp=cp)
        cp.cuda.Device().synchronize()
        return fp, X

    gpu_fit_transform()  # compile CuPy kernels
    base = measure(lambda: pandas_baseline(df), repeat=1)
    base.value = None
    gc.collect()
    cpu = measure(lambda: _trident_fit_transform(df), repeat=1)
    cpu.value = None
    gc.collect()
    gpu = measure(gpu_fit_transform, repeat=repeat)
    fp, X = gpu.value
    gpu.value = None
    ncol = X.shape[1]
    ref = fp.transform(df.iloc[:100000])
    same = bool(np.array_equal(cp.asnumpy(X[:100000]), ref))
    del X
    cp.get_default_memory_pool().free_all_blocks()

    def gpu_apply() -> None:
        fp.transform(df, xp=cp)
        cp.cuda.Device().synchronize()

    app = measure(gpu_apply, repeat=repeat)
    host = measure(lambda: gpu_host_part(df), repeat=repeat)
    host.value = None
    table = [
        ["pandas baseline: fit + transform", rows / base.seconds, base.seconds, 1.0],
        ["Trident CPU: fit_transform", rows / cpu.seconds, cpu.seconds, base.seconds / cpu.seconds],
        ["Trident GPU: fit_transform (CuPy)", rows / gpu.seconds, gpu.seconds, base.seconds / gpu.seconds],
        ["Trident GPU: transform (CuPy)", rows / app.seconds, app.seconds, base.seconds / app.seconds],
        ["  of which host: convert, encode strings once", rows / host.seconds, host.seconds,
         base.seconds / host.seconds],
    ]
    text = print_table(f"features, {rows:,} rows -> {ncol} float32 features (GPU); GPU == CPU on 100k rows: {same}",
                       ["pipeline", "rows/s", "seconds", "speed-up vs pandas"], table)
    return {"rows": rows, "features": ncol, "table": text, "gpu_equals_cpu": same,
            "results": {"pandas_s": base.seconds, "trident_cpu_s": cpu.seconds, "trident_gpu_s": gpu.seconds,
                        "trident_gpu_transform_s": app.seconds, "gpu_host_part_s": host.seconds}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench features", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=None, help="rows (default 5,000,000 on cpu, 20,000,000 on gpu)")
    ap.add_argument("--backend", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="best of N timings")
    args = ap.parse_args(argv)
    rows = args.rows or (20_000_000 if args.backend == "gpu" else 5_000_000)
    t0 = time.perf_counter()
    payload = run_gpu(rows, args.seed, args.repeat) if args.backend == "gpu" else run_cpu(rows, args.seed, args.repeat)
    payload["backend"] = args.backend
    payload["wall_s"] = time.perf_counter() - t0
    write_results("features" if args.backend == "cpu" else "features_gpu", payload)
    return 0
