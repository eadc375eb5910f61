"""GPU check: every GPU-side piece checked against its CPU / NumPy counterpart and timed, in one run.

Run from the repository root on a machine with a GPU::

    python bench/gpu_check.py            # prints one table; writes $OUT/gpu_check.json if OUT is set

Without a GPU it says so and exits 0. Each check is independent: an exception becomes a FAIL row and
the next check runs. Exit status 1 when a check failed. Needs only NumPy, Numba CUDA, CuPy, pandas
and scipy (no Dask: the LocalCUDACluster check runs only when dask_cuda imports). The checks stop
starting after ``--budget`` seconds (default 420) so the whole run stays under 8 minutes.

Kernel modules and engine.features may expose ``gpu_check() -> dict`` (keys ``ok``, ``detail``, and
any timings): it is called when present.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

Result = tuple[str, str, dict[str, Any]]  # status (ok / FAIL / skip), detail, metrics


# ------------------------------------------------------------------------------------ helpers
def _sync() -> None:
    import cupy

    cupy.cuda.Device().synchronize()


def _timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Best wall time (s) over ``repeat`` synchronised calls after one warm-up; and the last value."""
    value = fn()
    _sync()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        _sync()
        best = min(best, time.perf_counter() - t0)
    return best, value


def _cpu_timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    fn()
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def _optional(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise _Skip(f"{module} not importable ({exc})") from None


class _Skip(Exception):
    pass


# ------------------------------------------------------------------------------------ checks
def check_binned_stats(order: str, dtype: str, bins: int, rows: int = 2_000_000, features: int = 20) -> Result:
    import cupy
    import numpy as np

    from kernels.binned_stats import binned_stats, binned_stats_cpu, binned_stats_reference

    rng = np.random.default_rng(0)
    x = np.asarray(rng.normal(size=(rows, features)), dtype=dtype, order=order)
    x[rng.random(x.shape) < 0.02] = np.nan
    edges = np.quantile(rng.normal(size=(20_000, features)), np.linspace(0, 1, bins + 1), axis=0).T.copy()
    d = cupy.asarray(x, order=order)
    t_gpu, dev = _timed(lambda: binned_stats(d, edges))
    dev = dev.to_numpy()
    t_cpu, cpu = _cpu_timed(lambda: binned_stats_cpu(x, edges))
    ref = binned_stats_reference(x[: rows // 10], edges)
    part = binned_stats(d[: rows // 10], edges).to_numpy()
    same = np.array_equal(dev.counts, cpu.counts) and np.array_equal(dev.missing, cpu.missing)
    same_ref = np.array_equal(part.counts, ref.counts)
    close = np.allclose(dev.sum, cpu.sum, rtol=1e-6, atol=1e-6) and np.allclose(dev.sumsq, cpu.sumsq, rtol=1e-9)
    extremes = np.array_equal(dev.min, cpu.min) and np.array_equal(dev.max, cpu.max)
    ok = same and same_ref and close and extremes
    detail = f"counts==cpu {same}, ==reference {same_ref}, moments {close}, min/max {extremes}; gpu {t_gpu*1e3:.2f} ms, cpu {t_cpu*1e3:.0f} ms"
    return ("ok" if ok else "FAIL"), detail, {"gpu_s": t_gpu, "cpu_s": t_cpu}


def check_category_counts(rows: int = 5_000_000) -> Result:
    import cupy
    import numpy as np

    from kernels.category_counts import category_counts, category_counts_cpu, category_counts_reference

    rng = np.random.default_rng(1)
    k = np.array([5, 12, 30, 50, 3000])
    codes = np.stack([rng.integers(-1, kj, rows) for kj in k], axis=1).astype(np.int32)
    d = cupy.asarray(codes)
    t_gpu, dev = _timed(lambda: category_counts(d, k))
    t_cpu, cpu = _cpu_timed(lambda: category_counts_cpu(codes, k))
    dev = dev.to_numpy()
    ref = category_counts_reference(codes[: rows // 10], k)
    part = category_counts(d[: rows // 10], k).to_numpy()
    ok = np.array_equal(dev.counts, cpu.counts) and np.array_equal(dev.missing, cpu.missing) and np.array_equal(part.counts, ref.counts)
    return ("ok" if ok else "FAIL"), f"equal to cpu and reference: {ok}; gpu {t_gpu*1e3:.2f} ms, cpu {t_cpu*1e3:.0f} ms", {"gpu_s": t_gpu, "cpu_s": t_cpu}


def check_hashing(n: int = 2_000_000) -> Result:
    import cupy
    import numpy as np

    h = _optional("kernels.hashing")
    values = [f"user-{i % 100_003}-{i % 7}" for i in range(n)]
    data, offsets = h.strings_to_buffer(values)
    t_cpu, cpu = _cpu_timed(lambda: h.hash_bytes_cpu(data, offsets, 3))
    dd, do = cupy.asarray(data), cupy.asarray(offsets)
    t_gpu, dev = _timed(lambda: h.hash_bytes_cuda(dd, do, 3))
    ref = h.hash_bytes_reference(data[: offsets[1000]], offsets[:1001], 3)
    ok = np.array_equal(cupy.asnumpy(dev), cpu) and np.array_equal(cpu[:1000], ref)
    return ("ok" if ok else "FAIL"), f"equal to cpu and reference: {ok}; {n/t_gpu/1e6:.0f} M values/s gpu, {n/t_cpu/1e6:.0f} M/s cpu", {"gpu_s": t_gpu, "cpu_s": t_cpu}


def check_gbdt_binning(rows: int = 2_000_000) -> Result:
    import cupy
    import numpy as np

    gb = _optional("kernels.gbdt_binning")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(rows, 20)).astype(np.float32)
    x[rng.random(x.shape) < 0.02] = np.nan
    edges, n_bins = gb.bin_edges(x)
    t_cpu, cpu = _cpu_timed(lambda: gb.apply_bins_cpu(x, edges, n_bins))
    d = cupy.asarray(x)
    t_gpu, dev = _timed(lambda: gb.apply_bins_cuda(d, edges, n_bins))
    ref = gb.apply_bins_reference(x[:10_000], edges, n_bins)
    ok = np.array_equal(cupy.asnumpy(dev), cpu) and np.array_equal(cpu[:10_000], ref)
    return ("ok" if ok else "FAIL"), f"equal to cpu and reference: {ok}; gpu {t_gpu*1e3:.2f} ms, cpu {t_cpu*1e3:.0f} ms", {"gpu_s": t_gpu, "cpu_s": t_cpu}


def check_gbdt_loss(rows: int = 5_000_000) -> Result:
    import cupy
    import numpy as np

    gl = _optional("kernels.gbdt_loss")
    rng = np.random.default_rng(3)
    raw = rng.normal(size=rows)
    y = (rng.random(rows) < 0.3).astype(np.float64)
    out = []
    for loss in ("squared_error", "log_loss"):
        g, h = gl.gradients_cpu(loss, raw, y)
        dg, dh = gl.gradients_cuda(loss, cupy.asarray(raw), cupy.asarray(y))
        out.append(np.allclose(cupy.asnumpy(dg), g, rtol=1e-6, atol=1e-7) and np.allclose(cupy.asnumpy(dh), h, rtol=1e-6, atol=1e-7))
    ok = all(out)
    return ("ok" if ok else "FAIL"), f"squared_error / log_loss equal to cpu: {out}", {}


def check_hook(module: str) -> Result:
    mod = _optional(module)
    hook = getattr(mod, "gpu_check", None)
    if hook is None:
        raise _Skip(f"{module} has no gpu_check() hook")
    res = dict(hook())
    ok = bool(res.pop("ok", False))
    return ("ok" if ok else "FAIL"), str(res.pop("detail", "")), res


def check_drift_bandwidth(rows: int) -> Result:
    from bench.drift import gpu_bandwidth

    r = gpu_bandwidth(rows)
    ok = r["exact_vs_reference"]
    detail = (
        f"{r['rows']:,} x {r['features']} float32: kernel {r['kernel_ms']:.2f} ms = {r['kernel_read_GBps']:.0f} GB/s read "
        f"(goal 1500); copy floor {r['copy_read_floor_ms']:.2f} ms ({r['copy_GBps_read_plus_write']:.0f} GB/s r+w); "
        f"per-column CuPy loop {r['per_column_loop_ms']:.1f} ms; compare {r['compare_ms']:.1f} ms; exact {ok}"
    )
    return ("ok" if ok else "FAIL"), detail, r


def check_drift_parity(rows: int = 1_000_000) -> Result:
    import cupy
    import numpy as np

    from engine.monitor import compare, fit_reference

    rng = np.random.default_rng(4)
    ref = rng.normal(size=(rows, 12)).astype(np.float32)
    cur = rng.normal(0.05, 1.1, size=(rows, 12)).astype(np.float32)
    cur[rng.random(cur.shape) < 0.01] = np.nan
    sk = fit_reference(ref)
    host = compare(sk, cur).to_frame()
    t_gpu, dev = _timed(lambda: compare(sk, cupy.asarray(cur)), repeat=2)
    dev = dev.to_frame()
    cols = ["psi", "js", "ks", "wasserstein", "mean_cur", "std_cur", "missing_cur"]
    diff = float(np.nanmax(np.abs(dev[cols].to_numpy(float) - host[cols].to_numpy(float))))
    ok = diff < 1e-9 and bool((dev["drifted"] == host["drifted"]).all())
    return ("ok" if ok else "FAIL"), f"compare on CuPy vs NumPy: max |diff| {diff:.2e}; gpu {t_gpu*1e3:.1f} ms", {"gpu_s": t_gpu, "max_diff": diff}


def check_local_cuda_cluster() -> Result:
    _optional("dask_cuda")
    from dask.distributed import Client
    from dask_cuda import LocalCUDACluster

    t0 = time.perf_counter()
    with LocalCUDACluster(n_workers=1) as cluster, Client(cluster) as client:
        def task() -> float:
            import cupy

            return float(cupy.arange(1_000_000, dtype=cupy.float64).sum())

        value = client.submit(task).result()
    dt = time.perf_counter() - t0
    ok = value == 499999500000.0
    return ("ok" if ok else "FAIL"), f"1 worker started, CuPy task returned {value:.0f} in {dt:.1f} s", {"seconds": dt}


# ------------------------------------------------------------------------------------ main
def _checks(args: argparse.Namespace) -> list[tuple[str, Callable[[], Result]]]:
    return [
        ("binned_stats C float32 10 bins", lambda: check_binned_stats("C", "float32", 10)),
        ("binned_stats F float32 10 bins", lambda: check_binned_stats("F", "float32", 10)),
        ("binned_stats C float64 40 bins", lambda: check_binned_stats("C", "float64", 40)),
        ("category_counts", check_category_counts),
        ("hashing", check_hashing),
        ("gbdt_binning", check_gbdt_binning),
        ("gbdt_loss", check_gbdt_loss),
        ("gbdt_hist", lambda: check_hook("kernels.gbdt_hist")),
        ("gbdt_partition", lambda: check_hook("kernels.gbdt_partition")),
        ("gbdt_split", lambda: check_hook("kernels.gbdt_split")),
        ("gbdt_predict", lambda: check_hook("kernels.gbdt_predict")),
        ("feature pipeline CuPy vs NumPy", lambda: check_hook("engine.features")),
        ("drift compare CuPy vs NumPy", check_drift_parity),
        (f"drift bandwidth {args.rows:,} x 20", lambda: check_drift_bandwidth(args.rows)),
        ("LocalCUDACluster", check_local_cuda_cluster),
    ]


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for m in ("numpy", "numba", "numba_cuda", "cupy", "pandas", "scipy", "dask", "dask_cuda"):
        try:
            mod = __import__(m)
            out[m] = str(getattr(mod, "__version__", "?"))
        except Exception:
            out[m] = "absent"
    return out


def _write(payload: dict[str, Any]) -> None:
    out = os.environ.get("OUT")
    if not out:
        return
    path = Path(out) / "gpu_check.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(f"results: {path}")


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ["check", "status", "seconds", "detail"]
    cells = [cols] + [[r["check"], r["status"], f"{r['seconds']:.2f}", r["detail"]] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells[1:]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Check and time every GPU-side piece of Trident.")
    p.add_argument("--rows", type=int, default=20_000_000, help="rows of the drift bandwidth check (x 20 float32)")
    p.add_argument("--budget", type=float, default=420.0, help="seconds after which no further check starts")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    from engine.backend import gpu_available

    ok, why = gpu_available()
    if not ok:
        print(f"gpu_check: no GPU on this machine ({why}); nothing to check.")
        _write({"gpu": False, "reason": why, "versions": _versions()})
        return 0
    from engine.backend.hardware import gpus
    from kernels._cuda import numpy_compat

    numpy_compat()  # before Numba CUDA compiles anything (np.row_stack on NumPy >= 2.5)
    device = gpus()
    print(f"gpu_check: {device[0]['name'] if device else 'GPU'}; {_versions()}", flush=True)
    rows: list[dict[str, Any]] = []
    for name, fn in _checks(args):
        t0 = time.perf_counter()
        if t0 - t_start > args.budget:
            rows.append({"check": name, "status": "skip", "seconds": 0.0, "detail": f"time budget of {args.budget:.0f} s spent", "metrics": {}})
            continue
        try:
            status, detail, metrics = fn()
        except _Skip as exc:
            status, detail, metrics = "skip", str(exc), {}
        except Exception as exc:  # a failing check is a row, not a crash
            status, detail, metrics = "FAIL", f"{type(exc).__name__}: {exc}", {"traceback": traceback.format_exc()}
        rows.append({"check": name, "status": status, "seconds": time.perf_counter() - t0, "detail": detail, "metrics": metrics})
        print(f"  {status:<4} {name} ({rows[-1]['seconds']:.1f} s): {detail}", flush=True)
    table = _table(rows)
    total = time.perf_counter() - t_start
    print(f"\nGPU check on {device[0]['name'] if device else 'GPU'}, {time.strftime('%Y-%m-%d')}, {total:.0f} s\n{table}")
    failed = [r["check"] for r in rows if r["status"] == "FAIL"]
    _write({"gpu": True, "device": device, "versions": _versions(), "seconds": total, "checks": rows, "table": table, "failed": failed})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
