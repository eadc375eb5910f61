"""Drift statistics: the all-feature report against a saved sketch, beside a per-column scipy loop and Evidently.

``python -m bench drift [--rows N] [--batches 1000,10000,100000] [--evidently-python PATH] [--gpu [--gpu-rows N]]``

CPU mode (default): a reference and a current frame of ``--rows`` rows x (20 float32 numeric +
5 string categorical) columns, a few of them drifted. Trident fits the reference sketch once
(shown apart), saves it, and the timed step loads the saved sketch and runs ``compare`` on the
current frame. Baselines measured in the same run: a per-column scipy loop (``ks_2samp`` and
``wasserstein_distance`` per numeric column, ``chi2_contingency`` per categorical) and, when
``--evidently-python`` names a Python with evidently 0.7.23 + pandas 2.3 (Evidently does not import
with pandas 3), Evidently's data-drift report run there in a subprocess on the same data. A second
table gives ``compare``'s latency on small batches of the current frame (``--batches``), the call a
monitoring loop makes, beside the scipy loop on the same batch.

GPU mode (``--gpu``): ``--gpu-rows`` x 20 float32 on the device against a saved sketch; prints the
fused kernel's time and effective read bandwidth (bytes read / kernel time) beside a device-to-device
copy of the same bytes (the bandwidth floor), a per-column CuPy ``searchsorted`` + ``bincount``
loop, and the whole ``compare`` call.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

N_NUMERIC = 20
N_CATEGORICAL = 5


# ------------------------------------------------------------------------------------------ data
def make_frames(rows: int, seed: int = 0) -> tuple[Any, Any]:
    """Reference and current frames: 20 float32 numeric (3 with 2% NaN) + 5 string categoricals.

    In the current frame numeric 0-3 and categorical 0 drift; the rest keep their distribution.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)

    def frame(drift: bool) -> pd.DataFrame:
        cols: dict[str, Any] = {}
        for j in range(N_NUMERIC):
            shift = 0.25 * (j + 1) if drift and j < 4 else 0.0
            if j % 3 == 0:
                v = rng.normal(shift, 1.0 + j / 10, rows)
            elif j % 3 == 1:
                v = rng.lognormal(shift / 2, 0.5, rows)
            else:
                v = rng.gamma(2.0 + shift, 1.0, rows)
            v = v.astype(np.float32)
            if j in (1, 7, 13):
                v[rng.random(rows) < 0.02] = np.nan
            cols[f"num_{j:02d}"] = v
        for j in range(N_CATEGORICAL):
            k = (5, 12, 30, 50, 8)[j]
            levels = np.array([f"c{j}_{i:02d}" for i in range(k)])
            w = np.linspace(2.0, 1.0, k) if not (drift and j == 0) else np.linspace(1.0, 2.0, k)
            cols[f"cat_{j}"] = pd.array(levels[rng.choice(k, rows, p=w / w.sum())], dtype="str")
        return pd.DataFrame(cols)

    return frame(False), frame(True)


def traced_peak(fn: Any) -> int:
    """Peak bytes of the allocations tracemalloc sees during ``fn()`` (NumPy arrays included).

    RSS growth misses memory the allocator reuses from earlier calls; this counts every live
    NumPy / Python allocation of the call itself (not Arrow's or Numba's own pools).
    """
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return int(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def frame_bytes(df: Any) -> int:
    return int(df.memory_usage(index=False, deep=True).sum())


# ------------------------------------------------------------------------------------ baselines
def scipy_loop(ref: Any, cur: Any) -> dict[str, Any]:
    """Per-column scipy: KS + Wasserstein per numeric column, chi-square contingency per categorical."""
    import pandas as pd
    from scipy import stats

    out: dict[str, Any] = {}
    for c in ref.columns:
        if c.startswith("num_"):
            a = ref[c].dropna().to_numpy()
            b = cur[c].dropna().to_numpy()
            ks = stats.ks_2samp(a, b)
            out[c] = (ks.statistic, ks.pvalue, stats.wasserstein_distance(a, b))
        else:
            t = pd.concat([ref[c].value_counts(), cur[c].value_counts()], axis=1).fillna(0).to_numpy().T
            t = t[:, t.sum(axis=0) > 0]
            res = stats.chi2_contingency(t, correction=False)
            out[c] = (res.statistic, res.pvalue)
    return out


_EVIDENTLY_SCRIPT = r'''
import json, resource, sys, time
import pandas as pd
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
num = [c for c in ref.columns if c.startswith("num_")]
cat = [c for c in ref.columns if c.startswith("cat_")]
for c in cat:
    ref[c] = ref[c].astype(object); cur[c] = cur[c].astype(object)
def rss():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
base = rss()
t0 = time.perf_counter()
try:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    dd = DataDefinition(numerical_columns=num, categorical_columns=cat)
    r = Report([DataDriftPreset()])
    r.run(Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd))
    api = "evidently Report + DataDriftPreset"
except ImportError:
    from evidently.report import Report
    from evidently.metric_preset import DataDriftPreset
    from evidently import ColumnMapping
    r = Report(metrics=[DataDriftPreset()])
    r.run(reference_data=ref, current_data=cur, column_mapping=ColumnMapping(numerical_features=num, categorical_features=cat))
    api = "evidently legacy Report"
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
import evidently
print(json.dumps({"seconds": dt, "peak_bytes": max(0, peak - base), "api": api, "version": evidently.__version__}))
'''


def run_evidently(python: str, ref: Any, cur: Any, timeout: float = 1800) -> dict[str, Any]:
    """Time Evidently's data-drift report in another Python (data handed over as Parquet)."""
    with tempfile.TemporaryDirectory(prefix="trident-bench-") as d:
        rp, cp = Path(d) / "ref.parquet", Path(d) / "cur.parquet"
        ref.to_parquet(rp)
        cur.to_parquet(cp)
        script = Path(d) / "run_evidently.py"
        script.write_text(_EVIDENTLY_SCRIPT)
        proc = subprocess.run([python, str(script), str(rp), str(cp)], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"evidently run failed (exit {proc.returncode}): {tail[0]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ CPU bench
def run_cpu(args: argparse.Namespace) -> dict[str, Any]:
    from bench.common import fmt_bytes, measure, print_table
    from engine.monitor import ReferenceSketch, compare, fit_reference
    from kernels.binned_stats import binned_stats_cpu, binned_stats_reference

    print(f"data: {args.rows:,} reference + {args.rows:,} current rows x ({N_NUMERIC} numeric + {N_CATEGORICAL} categorical)")
    ref, cur = make_frames(args.rows)
    cur_bytes = frame_bytes(cur)
    # warm up outside the timings: kernel compilation or cache load, scipy imports
    warm = min(args.rows, 60_000)
    compare(fit_reference(ref.iloc[:warm]), cur.iloc[:warm])
    with tempfile.TemporaryDirectory(prefix="trident-sketch-") as d:
        fit = measure(lambda: fit_reference(ref))
        fit.value.save(d)
        trident = measure(lambda: compare(ReferenceSketch.load(d), cur), repeat=args.repeat)
        trident_traced = traced_peak(lambda: compare(ReferenceSketch.load(d), cur))
    report = trident.value
    scipy_m = measure(lambda: scipy_loop(ref, cur), repeat=1)
    scipy_traced = traced_peak(lambda: scipy_loop(ref, cur))

    rows: list[list[Any]] = [
        ["Trident compare (CPU, saved sketch)", trident.seconds, fmt_bytes(trident.peak_bytes), fmt_bytes(trident_traced), 1.0],
        ["scipy per-column loop", scipy_m.seconds, fmt_bytes(scipy_m.peak_bytes), fmt_bytes(scipy_traced),
         scipy_m.seconds / trident.seconds],
    ]
    evidently: dict[str, Any] = {"status": "not run"}
    if args.evidently_python:
        try:
            ev = run_evidently(args.evidently_python, ref, cur)
            evidently = {"status": "ok", **ev}
            rows.append([f"Evidently {ev.get('version', '')} data drift", ev["seconds"], fmt_bytes(ev["peak_bytes"]), "",
                         ev["seconds"] / trident.seconds])
        except Exception as exc:  # a baseline failing must not hide the others
            evidently = {"status": "failed", "reason": str(exc)}
            rows.append(["Evidently data drift", "failed", str(exc)[:60], "", "n/a"])
    else:
        try:  # it fails with pandas 3 (ImportError: infer_dtype_from_object)
            import importlib

            importlib.import_module("evidently")
            evidently["reason"] = "evidently imports here, but only the --evidently-python route is measured"
        except Exception as exc:
            evidently["reason"] = (f"evidently does not import here ({type(exc).__name__}: {exc}); pass --evidently-python PATH "
                                   "to a Python with evidently 0.7.23 + pandas 2.3")
        rows.append(["Evidently data drift", "not run", "see note", "", "n/a"])
    rows.append(["Trident fit_reference (once, not compared)", fit.seconds, fmt_bytes(fit.peak_bytes), "", ""])
    table = print_table(
        f"drift, {args.rows:,} + {args.rows:,} rows (best time; peak RSS growth of the first call; traced = peak of "
        "NumPy allocations; ratio = baseline time / Trident)",
        ["method", "time s", "peak RSS", "traced peak", "ratio"], rows)
    if evidently["status"] != "ok":
        print(f"Evidently {evidently['status']}: {evidently.get('reason', '')}")

    x = cur[[c for c in cur.columns if c.startswith("num_")]].to_numpy(np.float32)
    edges = fit.value.edges
    binned_stats_cpu(x[:20000], edges, n_chunks=2)
    k_cpu = measure(lambda: binned_stats_cpu(x, edges), repeat=3)
    k_ref = measure(lambda: binned_stats_reference(x, edges), repeat=1)
    print_table("fused kernel alone on the current numeric matrix",
                ["kernel", "time s", "rows/s", "ratio"],
                [["binned_stats_cpu (fused, parallel)", k_cpu.seconds, args.rows / k_cpu.seconds, 1.0],
                 ["per-column searchsorted + bincount", k_ref.seconds, args.rows / k_ref.seconds, k_ref.seconds / k_cpu.seconds]])
    latency = batch_latency(ref, cur, fit.value, args.batches, args.repeat)
    speedup = scipy_m.seconds / trident.seconds
    mem_ratio = max(trident.peak_bytes, trident_traced) / cur_bytes
    print(f"current data: {fmt_bytes(cur_bytes)}; Trident peak (larger of RSS / traced) / current data = {mem_ratio:.2f} (goal < 2); "
          f"speed-up vs scipy loop = {speedup:.1f}x (goal >= 8); drifted features: {report.drifted_features}")
    return {
        "rows": args.rows,
        "current_bytes": cur_bytes,
        "trident_compare": {"seconds": trident.seconds, "peak_bytes": trident.peak_bytes, "traced_peak_bytes": trident_traced},
        "trident_fit_reference": {"seconds": fit.seconds, "peak_bytes": fit.peak_bytes},
        "scipy_loop": {"seconds": scipy_m.seconds, "peak_bytes": scipy_m.peak_bytes, "traced_peak_bytes": scipy_traced},
        "evidently": evidently,
        "kernel_cpu_seconds": k_cpu.seconds,
        "kernel_reference_seconds": k_ref.seconds,
        "speedup_vs_scipy": speedup,
        "peak_over_current": mem_ratio,
        "drifted_features": report.drifted_features,
        "table": table,
        "batch_latency": latency,
    }


def batch_latency(ref: Any, cur: Any, sketch: Any, batches: list[int], repeat: int) -> list[dict[str, Any]]:
    """``compare`` on small batches of the current frame (a monitoring loop's call), split into the
    statistics pass and the report, beside the per-column scipy loop on the same batch (which, having
    no sketch, reads the whole reference each time)."""
    from bench.common import print_table
    from engine.monitor import compare
    from engine.monitor.config import MonitorConfig
    from engine.monitor.drift import build_report
    from engine.monitor.stats import collect

    cfg = MonitorConfig()
    spec = sketch.spec()

    def median_ms(fn: Any, n: int) -> float:
        fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 1e3 * float(np.median(times))

    out, rows = [], []
    for b in batches:
        part = cur.iloc[: min(b, len(cur))]
        n = max(5, 20 * repeat if b <= 10_000 else 3 * repeat)
        t_all = median_ms(lambda: compare(sketch, part, cfg), n)
        stats = collect(part, spec, cfg.chunk_rows)
        t_stats = median_ms(lambda: collect(part, spec, cfg.chunk_rows), n)
        t_report = median_ms(lambda: build_report(sketch, stats, cfg), n)
        t_scipy = median_ms(lambda: scipy_loop(ref, part), 1)
        out.append({"rows": len(part), "compare_ms": t_all, "stats_ms": t_stats, "report_ms": t_report, "scipy_loop_ms": t_scipy})
        rows.append([f"{len(part):,}", t_all, t_stats, t_report, t_scipy, t_scipy / t_all])
    print_table(
        f"compare latency on a batch of the current frame (sketch of {len(ref):,} reference rows in memory; median ms; "
        "ratio = scipy loop / Trident)",
        ["batch rows", "Trident compare", "of which statistics", "of which report", "scipy per-column loop", "ratio"],
        rows,
    )
    return out


# ------------------------------------------------------------------------------------ GPU bench
def gpu_bandwidth(rows: int = 20_000_000, features: int = 20, bins: int = 10, repeat: int = 10) -> dict[str, Any]:
    """Fused CUDA kernel on ``rows x features`` float32 (C order) against a saved sketch.

    Returns the times (ms) and effective bandwidths (GB/s) of: the kernel launches alone, the whole
    ``binned_stats`` call, a device-to-device copy of the same bytes, a per-column CuPy
    ``searchsorted`` + ``bincount`` loop, and ``compare`` (kernel + correlations + report).
    """
    import cupy

    from engine.monitor import ReferenceSketch, compare, fit_reference
    from kernels.binned_stats import CudaBinnedStats, binned_stats, binned_stats_reference

    rng = cupy.random.default_rng(0)
    x = rng.standard_normal((rows, features), dtype=cupy.float32)
    x[:, 1] = cupy.where(rng.random(rows) < 0.02, cupy.nan, x[:, 1])
    nbytes = int(x.nbytes)
    with tempfile.TemporaryDirectory(prefix="trident-sketch-") as d:
        fit_reference(cupy.asnumpy(x[:1_000_000]), bins=bins).save(d)
        sketch = ReferenceSketch.load(d)
    edges = sketch.edges

    def timed(fn: Any, n: int) -> float:
        fn()  # warm-up (compiles)
        cupy.cuda.Device().synchronize()
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        best = float("inf")
        for _ in range(n):
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            best = min(best, cupy.cuda.get_elapsed_time(start, stop))
        return best  # ms

    plan = CudaBinnedStats(x, edges, sketch.shift)
    k_ms = timed(plan.launch, repeat)
    # the launch geometry around the default (blocks per multiprocessor x threads per block)
    from kernels._cuda import multiprocessors, simulator

    geometry = {}
    for per_sm in () if simulator() else (2, 4, 8, 16):
        for threads in (128, 256, 512, 1024):
            if per_sm * threads <= 2048:
                trial = CudaBinnedStats(x, edges, sketch.shift, blocks=per_sm * multiprocessors(), threads=threads)
                try:
                    geometry[f"{per_sm}x{threads}"] = timed(trial.launch, max(3, repeat // 3))
                except Exception:  # e.g. too many registers for this many threads a block: not a candidate
                    continue
    # kernel variants: loads in flight a thread (unroll) and register caps (launch bounds for 4-6
    # blocks of 256 threads a multiprocessor; spills possible); kept only with the same counts
    want = plan.result().counts
    variants = {}
    # (one variant under the simulator: a smoke run exercises this code)
    for unroll, per_sm in ((2, None),) if simulator() else ((4, None), (4, 4), (8, 4), (8, 5), (16, None), (8, 6)):
        blocks = (per_sm or 3) * multiprocessors()
        trial = CudaBinnedStats(x, edges, sketch.shift, blocks=blocks, threads=256, blocks_per_sm=per_sm, unroll=unroll)
        try:
            ms = timed(trial.launch, max(3, repeat // 3))
        except Exception:  # cannot compile or launch with that cap: not a candidate
            continue
        if bool((trial.result().counts == want).all()):
            variants[f"unroll {unroll}, {f'cap {per_sm}x256' if per_sm else 'no cap'}"] = ms
    call_ms = timed(lambda: binned_stats(x, edges, sketch.shift).counts.sum(), repeat)
    copy_ms = _copy_ms(x, timed, repeat)

    inner = [cupy.asarray(edges[j, 1 : sketch.nbins(j)]) for j in range(features)]

    def per_column() -> None:
        for j in range(features):
            col = x[:, j]
            ok = col[~cupy.isnan(col)]
            cupy.bincount(cupy.searchsorted(inner[j], ok, side="right"), minlength=sketch.nbins(j))

    loop_ms = timed(per_column, max(2, repeat // 3))
    compare_ms = timed(lambda: compare(sketch, x), max(2, repeat // 3))
    # exactness: device histograms equal the NumPy reference on a slice
    part = binned_stats(x[:2_000_000], edges).to_numpy()
    exact = bool(np.array_equal(part.counts, binned_stats_reference(cupy.asnumpy(x[:2_000_000]), edges).counts))
    gb = nbytes / 1e9
    return {
        "rows": rows,
        "features": features,
        "bytes": nbytes,
        "kernel_ms": k_ms,
        "kernel_read_GBps": gb / (k_ms / 1e3),
        "call_ms": call_ms,
        "call_read_GBps": gb / (call_ms / 1e3),
        "copy_ms": copy_ms,
        "copy_GBps_read_plus_write": 2 * gb / (copy_ms / 1e3),
        "copy_read_floor_ms": copy_ms / 2,
        "per_column_loop_ms": loop_ms,
        "compare_ms": compare_ms,
        "exact_vs_reference": exact,
        "geometry_ms": geometry,
        "variant_ms": variants,
    }


def _copy_ms(x: Any, timed: Any, repeat: int) -> float:
    """Best time (ms) of a device-to-device copy of ``x`` (the bandwidth floor)."""
    import cupy

    y = cupy.empty_like(x)
    return timed(lambda: cupy.copyto(y, x), repeat)


def run_gpu(args: argparse.Namespace) -> dict[str, Any]:
    from bench.common import fmt_bytes, print_table
    from engine.backend import gpu_available

    ok, why = gpu_available()
    if not ok:
        print(f"--gpu: no GPU ({why}); nothing measured")
        return {"gpu": False, "reason": why}
    import kernels._cuda  # noqa: F401  (NumPy aliases Numba CUDA needs)

    r = gpu_bandwidth(args.gpu_rows)
    print_table(
        f"drift on GPU, {r['rows']:,} x {r['features']} float32 ({fmt_bytes(r['bytes'])}) against a saved sketch",
        ["step", "time ms", "read GB/s", "note"],
        [
            ["fused kernel (launches only)", r["kernel_ms"], r["kernel_read_GBps"], "goal >= 1500 GB/s"],
            ["binned_stats call", r["call_ms"], r["call_read_GBps"], "kernel + partial reduction"],
            ["device-to-device copy (floor)", r["copy_ms"], r["copy_GBps_read_plus_write"] / 2,
             f"read+write {r['copy_GBps_read_plus_write']:.0f} GB/s; read floor {r['copy_read_floor_ms']:.2f} ms"],
            ["per-column CuPy searchsorted+bincount", r["per_column_loop_ms"], r["bytes"] / 1e9 / (r["per_column_loop_ms"] / 1e3), "baseline"],
            ["compare (kernel + correlations + report)", r["compare_ms"], r["bytes"] / 1e9 / (r["compare_ms"] / 1e3), ""],
        ],
    )
    print(f"histograms equal the NumPy reference: {r['exact_vs_reference']}")
    return {"gpu": True, **r}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench drift", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the reference and of the current frame")
    p.add_argument("--repeat", type=int, default=3, help="timed repeats of Trident's compare (best is reported)")
    p.add_argument("--evidently", action="store_true", help="run Evidently (needs --evidently-python)")
    p.add_argument("--evidently-python", default=os.environ.get("TRIDENT_EVIDENTLY_PYTHON"),
                   help="a Python with evidently 0.7.23 + pandas 2.3 to run Evidently in")
    p.add_argument("--batches", type=lambda v: [int(x) for x in v.split(",") if x], default=[1_000, 10_000, 100_000],
                   help="comma-separated batch sizes for the compare-latency table (default 1000,10000,100000)")
    p.add_argument("--gpu", action="store_true", help="GPU mode: fused-kernel bandwidth on the device")
    p.add_argument("--gpu-rows", type=int, default=20_000_000)
    args = p.parse_args(argv)
    if args.evidently and not args.evidently_python:
        print("--evidently: Evidently cannot import in this environment (pandas 3); give --evidently-python PATH "
              "to a Python with evidently 0.7.23 + pandas 2.3")
    from bench.common import write_results

    t0 = time.perf_counter()
    payload = run_gpu(args) if args.gpu else run_cpu(args)
    payload["wall_seconds"] = time.perf_counter() - t0
    write_results("drift_gpu" if args.gpu else "drift", payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
