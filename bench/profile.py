"""profile: Trident's profiling (profile_frame) against plain pandas describe / value_counts / corr.

``python -m bench profile [--rows 5000000] [--cols 30]`` builds one synthetic table (about 3/4 float
columns with missing values, 1/4 string categoricals from 2 to 20,000 levels, a binary target), then
measures in the same process, on the same frame:

- Trident: ``profile_frame`` with the default ProfileConfig (correlations and rank statistics on a
  200,000-row sample, everything else on every row), and again with ``sample_rows=0`` (every
  statistic on every row);
- pandas: ``df.describe()``, ``value_counts()`` per categorical and ``df.corr(numeric_only=True)``;
- rendering profile.html from the computed profile.

Peak memory is the growth of resident memory during the call, compared with the frame's in-memory
size (``df.memory_usage(deep=True).sum()``). Goals: at least 3x the pandas speed, peak under 3x the data.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import os
import time
from typing import Any

import numpy as np

from bench.common import fmt_bytes, measure, print_table, write_results

CARDINALITIES = (2, 5, 12, 50, 300, 2000, 20000)


def make_frame(rows: int, cols: int = 30, seed: int = 0) -> tuple[Any, dict[str, str]]:
    """The benchmark table and its column kinds (target column ``target``)."""
    import pandas as pd
    import pyarrow as pa

    if cols < 3:
        raise SystemExit("--cols must be at least 3 (one numeric, one categorical, the target)")
    rng = np.random.default_rng(seed)
    n_cat = max(1, round((cols - 1) * 0.24))
    n_num = cols - 1 - n_cat
    data: dict[str, Any] = {}
    factors = rng.standard_normal((3, rows))
    for i in range(n_num):
        kind = i % 4
        v = 0.6 * factors[i % 3] + 0.8 * rng.standard_normal(rows)
        if kind == 1:
            v = np.exp(v) * 1000.0  # skewed amounts
        elif kind == 2:
            v = np.round(v * 10 + 40)  # integer-like
        elif kind == 3:
            v = v * 0.01 - 5.0
        v[rng.random(rows) < (0.02, 0.05, 0.1, 0.2)[i % 4]] = np.nan
        data[f"num_{i:02d}"] = v
    kinds = {c: "numeric" for c in data}
    for i in range(n_cat):
        k = CARDINALITIES[i % len(CARDINALITIES)]
        levels = pa.array([f"c{i}_{j:05d}" for j in range(k)])
        idx = np.minimum(rng.zipf(1.3, rows) - 1, k - 1).astype(np.int32) if k > 12 else rng.integers(0, k, rows,
                                                                                                       dtype=np.int32)
        codes = pa.array(idx, mask=rng.random(rows) < 0.02)
        strings = pa.DictionaryArray.from_arrays(codes, levels).cast(pa.string())
        data[f"cat_{i}"] = pd.array(strings, dtype="str")
        kinds[f"cat_{i}"] = "categorical"
    score = factors[0] + 0.5 * factors[1] + rng.standard_normal(rows)
    data["target"] = (score > 1.2).astype(np.int64)
    return pd.DataFrame(data), kinds


def _release() -> None:
    """Collect garbage and give freed heap pages back, so each measurement starts from the same ground."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _with_cpu(fn: Any) -> Any:
    """``fn`` returning (its value, CPU seconds of this process during the call, all threads)."""
    def run() -> tuple[Any, float]:
        t0 = time.process_time()
        value = fn()
        return value, time.process_time() - t0
    return run


def pandas_baseline(df: Any, cats: list[str]) -> dict[str, Any]:
    """The same statistics with plain pandas: describe, value counts per categorical, Pearson."""
    return {"describe": df.describe(), "counts": {c: df[c].value_counts() for c in cats},
            "corr": df.corr(numeric_only=True)}


def main(argv: list[str] | None = None) -> int:
    from engine.config.base import ProfileConfig
    from engine.data.profiling import profile_frame
    from engine.data.profiling_html import render_html

    ap = argparse.ArgumentParser(prog="python -m bench profile", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--cols", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="profile.threads (0 = every core)")
    ap.add_argument("--repeat", type=int, default=1, help="best of this many timed calls")
    ap.add_argument("--no-full", action="store_true", help="skip the sample_rows=0 run")
    args = ap.parse_args(argv)

    df, kinds = make_frame(args.rows, args.cols, args.seed)
    cats = [c for c, k in kinds.items() if k == "categorical"]
    size = int(df.memory_usage(deep=True).sum())
    print(f"data: {len(df):,} rows x {df.shape[1]} columns ({len(kinds) - len(cats)} numeric, {len(cats)} "
          f"categorical, binary target), {fmt_bytes(size)} in memory", flush=True)

    # warm up imports and code paths on a small slice
    small = df.iloc[:2000].copy()
    profile_frame(small, kinds, "target", "binary", ProfileConfig(threads=args.threads))
    pandas_baseline(small, cats)
    del small

    runs: list[tuple[str, Any]] = [
        ("trident profile_frame (default: corr/ranks on 200k sample)",
         lambda: profile_frame(df, kinds, "target", "binary", ProfileConfig(threads=args.threads))),
    ]
    if not args.no_full:
        runs.append(("trident profile_frame, sample_rows=0 (all rows)",
                     lambda: profile_frame(df, kinds, "target", "binary",
                                           ProfileConfig(threads=args.threads, sample_rows=0))))
    runs.append(("pandas describe + value_counts + corr", lambda: pandas_baseline(df, cats)))
    results: dict[str, Any] = {}
    for name, fn in runs:
        _release()
        results[name] = measure(_with_cpu(fn), repeat=args.repeat)
        print(f"  {name}: {results[name].seconds:.2f} s", flush=True)
    prof = results[runs[0][0]].value[0]
    _release()
    html = measure(_with_cpu(lambda: render_html(prof)))

    base = results[runs[-1][0]].seconds
    rows = []
    for name, m in results.items():
        rows.append([name, m.seconds, m.value[1], len(df) / m.seconds, fmt_bytes(m.peak_bytes), m.peak_bytes / size,
                     base / m.seconds])
    rows.append(["render profile.html (from the profile)", html.seconds, html.value[1], float("nan"),
                 fmt_bytes(html.peak_bytes), html.peak_bytes / size, float("nan")])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print_table(f"profile: {len(df):,} rows x {df.shape[1]} columns, data {fmt_bytes(size)}, "
                f"{os.cpu_count()} cores, load average {load:.1f}",
                ["method", "seconds", "cpu seconds", "rows/s", "peak memory", "peak / data", "speed-up vs pandas"],
                rows)
    write_results("profile", {
        "rows": len(df), "columns": int(df.shape[1]), "data_bytes": size, "threads": args.threads,
        "load_average": load,
        "results": [{"method": r[0], "seconds": r[1], "cpu_seconds": r[2], "rows_per_s": r[3],
                     "peak_bytes": m.peak_bytes, "peak_over_data": r[5], "speedup_vs_pandas": r[6]}
                    for r, m in zip(rows, [*results.values(), html])],
        "html_bytes": len(html.value[0].encode()),
        "warnings": len(prof["warnings"]),
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
