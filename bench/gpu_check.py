"""GPU check: every GPU-side piece checked against its CPU / NumPy counterpart and timed, in one run.

Run from the repository root on a machine with a GPU::

    python bench/gpu_check.py            # prints one table; writes $OUT/gpu_check.json if OUT is set
    python bench/gpu_check.py --only "drift|gbdt"   # the checks whose name matches

Without a GPU it says so and exits 0. Each check is independent: an exception becomes a FAIL row and
the next check runs. An error that leaves the CUDA context unusable (an illegal memory access, a
kernel that failed or hit an assertion: :func:`sticky_cuda_error`) would fail every later check too, so
the remaining checks then run in a fresh process (same options, the rest of the budget) and their rows
join this run's table. Exit status 1 when a check failed. Needs only NumPy, Numba CUDA, CuPy, pandas
and scipy (no Dask: the LocalCUDACluster check, the train stage with ``cluster=local_cuda``, runs only
when dask_cuda imports; it and the stages check need hydra-core). ``bench/gpu_wheels.sh`` fetches the wheels a GPU machine without them needs. The checks
stop starting after ``--budget`` seconds (default 420) so the whole run stays under 8 minutes;
``$OUT/gpu_check.json`` is rewritten after every check, so a run stopped early keeps what it did.

``--smoke`` runs every check on :data:`SMOKE_ROWS` rows, GPU or not: with ``NUMBA_ENABLE_CUDASIM=1``
and ``tests/cupy_standin`` (NumPy posing as CuPy) first on ``PYTHONPATH`` the whole script runs on a
machine without a GPU, which tests the script, not the GPU.

Kernel modules may expose ``gpu_check() -> dict`` (keys ``ok``, ``detail``, and any timings): it is
called when present.

Feature pipeline: CuPy vs NumPy transform of the same fitted pipeline on 200k synthetic credit rows
(every encoder, dates, a ratio; once more with PCA), equal when ``|gpu - cpu| <= 1e-6 * max(|cpu|, 1)``
element-wise (:data:`FEATURE_RTOL`; float32 output, exact in practice except PCA's matrix product), and
the fit itself on CuPy against the NumPy fit (same fitted pipeline, same training matrix);
the ``features``, ``train`` and ``evaluate`` stages with ``backend=gpu`` (the pipeline fitted on the
device, device matrices, ``trident_gbdt`` fitted and scored on them, CV and validation AUC within
:data:`GBDT_AUC_TOL` of the CPU run's); and the 20M-row timing of
``python -m bench features --backend gpu`` with the pandas baseline and Trident's CPU path timed on
fewer rows in the same run and extrapolated per row (the table says so).

trident_gbdt: fit on CuPy and on NumPy input (1M x 20, 100 trees of depth 6: the data of ``python -m bench
gbdt``, whose GPU goal this measures), held-out AUC equal
within :data:`GBDT_AUC_TOL`, fit time beside scikit-learn's HistGradientBoostingClassifier on all CPU
cores (goal: GPU fit >= 10x faster), and once more grown by the host-driven grower
(``TRIDENT_GBDT_LEVELS=0``: a wait for the device at each level) instead of the device-resident level
kernels (:mod:`engine.train.gbdt_device`); a profiled 20-tree fit says where the host time goes and
CUDA events around each kernel call what the device is busy with.

Last, the test suite's ``gpu``-marked tests run in a subprocess (``pytest -m gpu`` over
:data:`GPU_TEST_FILES`).
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
# run as a script, Python puts bench/ first on sys.path, where bench/profile.py would shadow the standard
# library's profile module (which cProfile imports): the bench modules are imported as bench.<name> instead
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
import cProfile  # noqa: E402,F401  (the GBDT check's profile; imported here so a shadowed module fails at once)

Result = tuple[str, str, dict[str, Any]]  # status (ok / FAIL / skip), detail, metrics
#: numba.cuda, bound by the launch-overhead check (a module global for the CUDA simulator).
cuda: Any = None

#: Feature matrices on CuPy and NumPy agree when ``|gpu - cpu| <= FEATURE_RTOL * max(|cpu|, 1)``.
FEATURE_RTOL = 1e-6
#: Held-out ROC AUC of trident_gbdt fitted on CuPy vs NumPy input.
GBDT_AUC_TOL = 0.005
#: Goals printed beside the timings (issue "Kernels and the GPU path").
GOAL_GBDT_VS_SKLEARN = 10.0
GOAL_FEATURES_VS_PANDAS = 20.0


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
        gh = gl.gradients_cpu(loss, raw, y)  # (rows, 2): gradient, hessian
        dgh = gl.gradients_cuda(loss, cupy.asarray(raw), cupy.asarray(y))
        out.append(bool(np.allclose(cupy.asnumpy(dgh), gh, rtol=1e-6, atol=1e-7)))
    ok = all(out)
    return ("ok" if ok else "FAIL"), f"squared_error / log_loss equal to cpu: {out}", {}


def check_hook(module: str, **sizes: int) -> Result:
    mod = _optional(module)
    hook = getattr(mod, "gpu_check", None)
    if hook is None:
        raise _Skip(f"{module} has no gpu_check() hook")
    res = dict(hook(**sizes))
    ok = bool(res.pop("ok", False))
    return ("ok" if ok else "FAIL"), str(res.pop("detail", "")), res


def check_drift_bandwidth(rows: int) -> Result:
    from bench.drift import gpu_bandwidth
    from kernels.binned_stats import UNROLL

    r = gpu_bandwidth(rows)
    ok = r["exact_vs_reference"]
    detail = (
        f"{r['rows']:,} x {r['features']} float32: kernel {r['kernel_ms']:.2f} ms = {r['kernel_read_GBps']:.0f} GB/s read "
        f"(goal 1500); copy floor {r['copy_read_floor_ms']:.2f} ms ({r['copy_GBps_read_plus_write']:.0f} GB/s r+w); "
        f"per-column CuPy loop {r['per_column_loop_ms']:.1f} ms; compare {r['compare_ms']:.1f} ms; exact {ok}"
    )
    if r.get("geometry_ms"):
        best = min(r["geometry_ms"], key=r["geometry_ms"].get)
        detail += f"; best geometry (blocks/SM x threads) {best}: {r['geometry_ms'][best]:.2f} ms"
    if r.get("variant_ms"):
        best = min(r["variant_ms"], key=r["variant_ms"].get)
        gb = r["bytes"] / 1e9
        detail += (f"; best kernel variant ({best}): {r['variant_ms'][best]:.2f} ms = "
                   f"{gb / (r['variant_ms'][best] / 1e3):.0f} GB/s (default: unroll {UNROLL}, no cap)")
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
    d_cur = cupy.asarray(cur)  # uploaded once: the timings are of compare on data already on the device
    t_gpu, dev = _timed(lambda: compare(sk, d_cur), repeat=3)
    dev = dev.to_frame()
    cols = ["psi", "js", "ks", "wasserstein", "mean_cur", "std_cur", "missing_cur"]
    diff = float(np.nanmax(np.abs(dev[cols].to_numpy(float) - host[cols].to_numpy(float))))
    ok = diff < 1e-9 and bool((dev["drifted"] == host["drifted"]).all())
    # where a call's time goes: the statistics pass (kernels, correlations, copies back) and the report
    # (host only), on all rows and on a 10,000-row batch (a monitoring loop's call: its fixed cost)
    from engine.monitor.config import MonitorConfig
    from engine.monitor.drift import build_report
    from engine.monitor.stats import collect

    cfg, spec = MonitorConfig(), sk.spec()
    small = d_cur[: min(rows, 10_000)]
    t_stats, stats = _timed(lambda: collect(d_cur, spec, cfg.chunk_rows), repeat=2)
    t_report, _ = _timed(lambda: build_report(sk, stats, cfg), repeat=3)
    # (a smoke run's few rows are already a small batch)
    t_small = _timed(lambda: compare(sk, small), repeat=5)[0] if len(small) < rows else t_gpu
    t_small_cpu, _ = _cpu_timed(lambda: compare(sk, cur[: len(small)]))
    detail = (f"compare on CuPy vs NumPy: max |diff| {diff:.2e}; gpu {t_gpu*1e3:.1f} ms for {rows:,} x 12 (statistics "
              f"{t_stats*1e3:.1f} ms, report {t_report*1e3:.1f} ms); a {len(small):,}-row batch {t_small*1e3:.1f} ms "
              f"(cpu {t_small_cpu*1e3:.1f} ms)")
    return ("ok" if ok else "FAIL"), detail, {"gpu_s": t_gpu, "max_diff": diff, "stats_s": t_stats, "report_s": t_report,
                                              "batch_rows": int(len(small)), "batch_gpu_s": t_small,
                                              "batch_cpu_s": t_small_cpu}


def _feature_diff(gpu: Any, cpu: Any) -> dict[str, float]:
    """Largest differences of a device matrix (already on the host) against the NumPy one."""
    import numpy as np

    a, b = np.asarray(gpu, dtype=np.float64), np.asarray(cpu, dtype=np.float64)
    if a.shape != b.shape:
        return {"max_abs": float("inf"), "max_scaled": float("inf"), "exact_share": 0.0}
    d = np.abs(a - b)
    scaled = d / np.maximum(np.abs(b), 1.0)
    return {"max_abs": float(d.max(initial=0.0)), "max_scaled": float(scaled.max(initial=0.0)),
            "exact_share": float((d == 0).mean()) if d.size else 1.0}


def _credit(rows: int) -> tuple[Any, Any]:
    from engine.data.synthetic import make_credit

    df = make_credit(rows, seed=0)
    y = df.pop("default").to_numpy()
    return df.drop(columns=["application_id"]), y


#: Encoders and derived features of the parity check: every encoder the runtime has, dates, a ratio.
PARITY_CONFIG: dict[str, Any] = {
    "encoders": {"postcode": "hashing", "employer": "target", "region": "frequency"},
    "derive": [{"name": "debt_to_income", "op": "ratio", "a": "debt", "b": "income"}],
}


def _same_fitted(a: Any, b: Any) -> bool:
    """Whether two fitted pipelines hold the same steps and arrays (target values within 1e-9)."""
    import numpy as np

    ra, rb = a.runtime_, b.runtime_
    if ra.spec != rb.spec or ra.arrays.keys() != rb.arrays.keys():
        return False
    for k, v in ra.arrays.items():
        w = rb.arrays[k]
        if v.dtype != w.dtype or v.shape != w.shape:
            return False
        if v.dtype.kind == "f" and not np.allclose(v, w, rtol=1e-9, atol=0.0):
            return False
        if v.dtype.kind != "f" and not np.array_equal(v, w):
            return False
    return True


def check_feature_parity(rows: int = 200_000) -> Result:
    import cupy

    from engine.features import FeaturePipeline

    df, y = _credit(rows)
    out: dict[str, Any] = {"rows": rows, "tolerance": f"|gpu - cpu| <= {FEATURE_RTOL:g} * max(|cpu|, 1)"}
    parts = []
    ok = True
    for label, extra in (("plain", {}), ("pca", {"reduce": "pca", "n_components": 8})):
        fp = FeaturePipeline(**PARITY_CONFIG, **extra).fit(df, y)
        if label == "plain":  # the fit itself on the device: the same pipeline, the same training matrix
            t_fit_cpu, host_train = _cpu_timed(lambda: FeaturePipeline(**PARITY_CONFIG).fit_transform(df, y))
            dev_fp = FeaturePipeline(**PARITY_CONFIG)
            t_fit_gpu, dev_train = _timed(lambda: dev_fp.fit_transform(df, y, xp=cupy), repeat=2)
            same_fit = _same_fitted(dev_fp, fp)
            diff = _feature_diff(cupy.asnumpy(dev_train), host_train)
            good = same_fit and diff["max_scaled"] <= FEATURE_RTOL
            ok = ok and good
            out["fit"] = {"cpu_s": t_fit_cpu, "gpu_s": t_fit_gpu, "same_pipeline": same_fit, **diff}
            parts.append(f"fit_transform on the device: same pipeline {same_fit}, training matrix max scaled diff "
                         f"{diff['max_scaled']:.1e}, numpy {t_fit_cpu*1e3:.0f} ms vs cupy {t_fit_gpu*1e3:.0f} ms")
        t_cpu, host = _cpu_timed(lambda: fp.transform(df))
        t_gpu, dev = _timed(lambda: fp.transform(df, xp=cupy), repeat=2)
        layout = bool(dev.flags.f_contiguous) == bool(host.flags.f_contiguous) and dev.dtype == host.dtype
        diff = _feature_diff(cupy.asnumpy(dev), host)
        good = layout and diff["max_scaled"] <= FEATURE_RTOL
        ok = ok and good
        out[label] = {"features": int(host.shape[1]), "cpu_s": t_cpu, "gpu_s": t_gpu, "layout_ok": layout, **diff}
        parts.append(f"{label}: {host.shape[1]} features, max scaled diff {diff['max_scaled']:.1e}, exact "
                     f"{diff['exact_share']:.1%}, numpy {t_cpu*1e3:.0f} ms vs cupy {t_gpu*1e3:.0f} ms")
    detail = f"{rows:,} rows (tolerance {FEATURE_RTOL:g} x max(|cpu|,1)); " + "; ".join(parts)
    return ("ok" if ok else "FAIL"), detail, out


def _gpu_backend() -> Any:
    """The GPU backend; on a smoke run without a GPU, the same over whatever ``cupy`` imports."""
    from engine.backend import Backend, gpu_available, select_backend

    if gpu_available()[0]:
        return select_backend("gpu")
    import cupy
    import pandas

    return Backend("gpu", cupy, pandas, "sklearn", "gpu")


def _stage_run(tmp: str, name: str, backend: Any, frame: Any, trees: int, depth: int,
               extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """split, features, train and evaluate of one run (trident_gbdt alone, its parameters fixed) on
    ``backend``: the context, stage seconds and what the records say about where things ran."""
    from engine.config import compose
    from engine.evaluate.stage import evaluate
    from engine.pipeline import RunContext
    from engine.registry.manifest import Manifest
    from engine.train.stage import features, split, train

    cfg = compose(["backend=cpu", "tracking.enabled=false", f"runs_dir={tmp}", "data.date_column=null",
                   "model.candidates=[trident_gbdt]", "search.enabled=false", "search.folds=2",
                   "~model.spaces.trident_gbdt", "+model.spaces.trident_gbdt={}",  # nothing searched:
                   f"+model.params.trident_gbdt.n_estimators={trees}",  # every parameter fixed here
                   f"+model.params.trident_gbdt.max_depth={depth}", *extra])
    run_dir = Path(tmp) / name
    run_dir.mkdir()
    ctx = RunContext(cfg=cfg, run_id=name, run_dir=run_dir, backend=backend, manifest=Manifest(name, run_dir))
    ctx.state.update(frame=frame, y=frame["default"].to_numpy(), target="default", task="binary",
                     id_column="application_id")
    split(ctx)
    t0 = time.perf_counter()
    features(ctx)
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    train(ctx)
    t_train = time.perf_counter() - t0
    evaluate(ctx)
    inputs = json.loads((run_dir / "candidates.json").read_text())["inputs"]["estimators"]
    scored = json.loads((run_dir / "evaluation.json").read_text())["candidates"][0]
    return {"ctx": ctx, "features_s": t_feat, "train_s": t_train, "inputs": inputs,
            "cv_auc": float(ctx.state["candidates"][0].cv["mean"]), "valid_auc": float(scored["valid"]["roc_auc"]),
            "scored_on": scored["scored_on"], "executor": dict(ctx.manifest.data.get("executor") or {})}


def check_stages(rows: int = 200_000, trees: int = 100, depth: int = 6) -> Result:
    """The ``features``, ``train`` and ``evaluate`` stages with ``backend=gpu`` against the same stages on the
    CPU backend: the pipeline fitted on the device and its device matrices left by ``features``,
    ``trident_gbdt`` fitted on them (``candidates.json["inputs"]``) and scored on them
    (``evaluation.json``), with cross-validated and validation AUCs within :data:`GBDT_AUC_TOL` of the
    CPU run's."""
    _optional("hydra")
    import tempfile

    import numpy as np

    from engine.backend import cpu_backend
    from engine.data.synthetic import make_credit

    frame = make_credit(rows, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: _stage_run(tmp, name, backend, frame, trees, depth)
                   for name, backend in (("cpu", cpu_backend()), ("gpu", _gpu_backend()))}
    cpu, gpu = results["cpu"]["ctx"], results["gpu"]["ctx"]
    on_device = all(type(v) is not np.ndarray for v in gpu.state["X_device"].values())  # CuPy (or a stand-in)
    host = all(type(v) is np.ndarray for v in gpu.state["X"].values())
    diffs = {k: _feature_diff(gpu.state["X"][k], cpu.state["X"][k])["max_scaled"] for k in ("train", "valid", "test")}
    rec = gpu.manifest["features_device"]
    auc_diff = results["gpu"]["cv_auc"] - results["cpu"]["cv_auc"]
    device_fit = results["gpu"]["inputs"].startswith("device matrices")
    features_fit = str(rec.get("fit", "")).startswith("device")
    valid_diff = results["gpu"]["valid_auc"] - results["cpu"]["valid_auc"]
    scored = results["gpu"]["scored_on"]
    ok = (on_device and host and max(diffs.values()) <= FEATURE_RTOL and rec.get("device") == "gpu" and device_fit
          and features_fit and abs(auc_diff) <= GBDT_AUC_TOL and scored == "device" and abs(valid_diff) <= GBDT_AUC_TOL)
    r = {k: {kk: vv for kk, vv in v.items() if kk != "ctx"} for k, v in results.items()}
    detail = (f"{rows:,} rows: X_device on CuPy {on_device}, X host copies {host}, max scaled diff vs cpu stage "
              f"{max(diffs.values()):.1e}; features {r['gpu']['features_s']:.2f} s gpu vs {r['cpu']['features_s']:.2f} s "
              f"cpu; trident_gbdt on device matrices {device_fit}, CV AUC gpu {r['gpu']['cv_auc']:.4f} vs cpu "
              f"{r['cpu']['cv_auc']:.4f}; train {r['gpu']['train_s']:.2f} s gpu vs {r['cpu']['train_s']:.2f} s cpu; "
              f"features fitted on the device {features_fit}; evaluated on the {scored}, validation AUC gpu "
              f"{r['gpu']['valid_auc']:.4f} vs cpu {r['cpu']['valid_auc']:.4f}")
    return ("ok" if ok else "FAIL"), detail, {"diffs": diffs, "record": rec, "runs": r, "auc_diff": auc_diff,
                                              "valid_auc_diff": valid_diff}


def check_launch_overhead(launches: int = 2000, arrays: int = 8) -> Result:
    """Host time of one Numba CUDA kernel launch with ``arrays`` array arguments passed as CuPy arrays
    and as Numba device arrays made once (``cuda.as_cuda_array``), and through
    :func:`kernels._cuda.launch`'s direct path (checked for its result), beside one CuPy elementwise
    launch: the cost the GBDT's ~8 launches per tree level pay."""
    import cupy

    from kernels._cuda import cuda as get_cuda

    global cuda  # a module global, as in kernels/: the CUDA simulator rebinds it inside the kernel
    cuda = get_cuda()

    @cuda.jit
    def copy8(a, b, c, d, e, f, g, h):  # pragma: no cover - compiled
        i = cuda.grid(1)
        if i < a.shape[0]:
            a[i] = b[i] + c[i] + d[i] + e[i] + f[i] + g[i] + h[i]

    xs = [cupy.zeros(1024, dtype=cupy.float32) for _ in range(arrays)]
    # zero-copy views of the same memory (the simulator has no as_cuda_array: copies stand in there)
    views = [cuda.as_cuda_array(x) if hasattr(cuda, "as_cuda_array") else cuda.to_device(cupy.asnumpy(x)) for x in xs]

    def per_launch(call: Callable[[], Any]) -> float:
        """Host microseconds per call over ``launches`` calls, after one (compiling) call."""
        call()
        _sync()
        t0 = time.perf_counter()
        for _ in range(launches):
            call()
        _sync()
        return (time.perf_counter() - t0) / launches * 1e6

    from kernels._cuda import launch

    cupy_us = per_launch(lambda: copy8[4, 256](*xs))
    view_us = per_launch(lambda: copy8[4, 256](*views))
    fast_us = per_launch(lambda: launch(copy8, 4, 256, *xs))  # the first call compiles and prepares
    xs[0].fill(0)
    for x in xs[1:]:
        x.fill(1)
    launch(copy8, 4, 256, *xs)
    fast_ok = bool(float(xs[0].sum()) == 7 * 1024)  # the direct path wrote b + c + ... + h
    elementwise_us = per_launch(lambda: cupy.add(xs[0], 1, out=xs[0]))
    detail = (f"{arrays} array arguments: Numba launch {cupy_us:.1f} us with CuPy arrays, {view_us:.1f} us with "
              f"Numba device arrays, {fast_us:.1f} us through kernels._cuda.launch (result right: {fast_ok}); "
              f"a CuPy elementwise launch {elementwise_us:.1f} us ({launches} launches each)")
    return ("ok" if fast_ok else "FAIL"), detail, {
        "numba_cupy_args_us": cupy_us, "numba_device_array_args_us": view_us, "fast_launch_us": fast_us,
        "fast_launch_correct": fast_ok, "cupy_elementwise_us": elementwise_us, "launches": launches, "arrays": arrays}


def check_gbdt_gpu(rows: int = 1_000_000, features: int = 20, trees: int = 100) -> Result:
    import cupy

    from bench.gbdt import _models, gpu_check_rows, make_data, profile_fit

    data = make_data(rows, features)
    sk, cpu, gpu = gpu_check_rows(rows, features, trees, data=data)
    diff = gpu["auc"] - cpu["auc"]
    speed = sk["fit_s"] / gpu["fit_s"]
    cores = os.cpu_count() or 0
    ok = abs(diff) <= GBDT_AUC_TOL
    goal = "met" if speed >= GOAL_GBDT_VS_SKLEARN else "NOT met"
    # the same GPU fit grown by the host-driven grower (a wait for the device each level), beside the
    # device-resident level kernels the default fit uses
    from bench.gbdt import measure
    from engine.train.gbdt_device import LEVELS_ENV
    from kernels._cuda import fast_launch_works

    direct = fast_launch_works()
    os.environ[LEVELS_ENV] = "0"
    try:
        X, y, Xt, yt = data
        host = measure("trident_gbdt (GPU, host-driven growth)", _models(trees)["trident_gbdt"],
                       cupy.asarray(X), cupy.asarray(y), cupy.asarray(Xt), yt)
    finally:
        os.environ.pop(LEVELS_ENV)
    # where the GPU fit's host time goes, for the next round of tuning (a shorter fit, same data)
    p_trees = min(trees, 20)
    prof = profile_fit(lambda: _models(p_trees)["trident_gbdt"](), cupy.asarray(data[0]), cupy.asarray(data[1]))
    # and what the device is busy with during such a fit
    from bench.gbdt import device_times

    dev = device_times(lambda: _models(p_trees)["trident_gbdt"](), cupy.asarray(data[0]), cupy.asarray(data[1]))
    busiest = ", ".join(f"{f} {v:.0f} ms" for f, v in sorted(dev["device_ms"].items(), key=lambda kv: -kv[1])[:3])
    detail = (f"{rows:,} x {features}, {trees} trees depth 6: fit sklearn HGB ({cores} cores) {sk['fit_s']:.2f} s, "
              f"trident CPU {cpu['fit_s']:.2f} s, trident GPU {gpu['fit_s']:.2f} s -> GPU {speed:.1f}x sklearn "
              f"(goal >= {GOAL_GBDT_VS_SKLEARN:.0f}x: {goal}); AUC GPU {gpu['auc']:.4f} vs CPU {cpu['auc']:.4f} "
              f"(|diff| {abs(diff):.4f} <= {GBDT_AUC_TOL}); direct launches {direct}; the same GPU fit grown "
              f"host-driven (a wait each level) {host['fit_s']:.2f} s, AUC {host['auc']:.4f}; profiled {p_trees}-tree GPU fit: "
              f"{prof['seconds'] / p_trees * 1e3:.1f} ms per tree, {prof['kernel_launches']} kernel launches "
              f"taking {prof['launch_seconds']:.2f} s of host time (top functions in the JSON); device busy "
              f"{dev['busy_share']:.0%} of an unprofiled {p_trees}-tree fit ({busiest})")
    return ("ok" if ok else "FAIL"), detail, {"sklearn": sk, "trident_cpu": cpu, "trident_gpu": gpu,
                                              "speedup_vs_sklearn": speed, "auc_diff": diff, "cores": cores,
                                              "direct_launch": direct, "trident_gpu_host_driven": host,
                                              "gpu_fit_profile": prof, "gpu_fit_device_times": dev}


#: Test files holding the tests marked ``gpu`` (they skip, visibly, without a GPU).
GPU_TEST_FILES = ("tests/unit/test_gbdt_gpu.py", "tests/unit/test_kernel_launch.py", "tests/unit/test_backend.py",
                  "tests/cudasim/test_stats_cuda.py")


def check_gpu_tests(timeout: float = 150.0) -> Result:
    """The test suite's ``gpu``-marked tests (``pytest -m gpu``), in a subprocess on this machine."""
    import re
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    # no warnings summary and short tracebacks: the failures, not Numba's occupancy warnings, fill the output
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-p", "no:warnings",
           "--tb=short", *GPU_TEST_FILES]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=timeout, env=env)
    tail = (proc.stdout + proc.stderr).strip().splitlines()
    summary = next((line for line in reversed(tail) if re.search(r"\d+ (passed|failed|skipped|error)", line)), "")
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", summary)}
    if proc.returncode != 0:
        return "FAIL", f"pytest -m gpu: {summary or 'exit ' + str(proc.returncode)}", {"output": "\n".join(tail[-400:]), **counts}
    if counts.get("passed", 0) == 0:
        raise _Skip(f"pytest -m gpu: {summary} (no GPU test ran)")
    return "ok", f"pytest -m gpu: {summary.strip('= ')}", counts


def check_features_bench(rows: int, host_rows: int) -> Result:
    """``python -m bench features --backend gpu`` at ``rows``; pandas and Trident CPU timed at ``host_rows``
    and extrapolated per row."""
    import gc

    import cupy
    import numpy as np

    from bench import features as bf
    from bench.common import profile_call
    from engine.features import FeaturePipeline

    small = bf.make_frame(host_rows, seed=0)
    FeaturePipeline(**bf.CONFIG).fit_transform(small.iloc[:2000], kinds=bf.KINDS)  # compile the CPU twins
    t0 = time.perf_counter()
    bf.pandas_baseline(small)
    pandas_s = time.perf_counter() - t0
    gc.collect()
    t0 = time.perf_counter()
    FeaturePipeline(**bf.CONFIG).fit_transform(small, kinds=bf.KINDS)
    cpu_s = time.perf_counter() - t0
    gc.collect()

    def gpu_fit_transform(df: Any) -> tuple[Any, Any]:
        fp = FeaturePipeline(**bf.CONFIG)
        X = fp.fit_transform(df, kinds=bf.KINDS, xp=cupy)
        _sync()
        return fp, X

    gpu_fit_transform(small)  # CuPy compiles its kernels once
    del small
    gc.collect()
    t0 = time.perf_counter()
    df = bf.make_frame(rows, seed=0)
    make_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fp, X = gpu_fit_transform(df)
    gpu_s = time.perf_counter() - t0
    n_feat = int(X.shape[1])
    check = min(rows, 100_000)
    diff = _feature_diff(cupy.asnumpy(X[:check]), fp.transform(df.iloc[:check]))
    del X
    cupy.get_default_memory_pool().free_all_blocks()
    t0 = time.perf_counter()
    fp.transform(df, xp=cupy)
    _sync()
    apply_s = time.perf_counter() - t0
    cupy.get_default_memory_pool().free_all_blocks()
    # where the time goes: the host part (columns converted, strings encoded) a GPU cannot speed up, and
    # a profile of the transform (own time of the busiest functions, this repository's by cumulative time)
    t0 = time.perf_counter()
    bf.gpu_host_part(df)
    host_s = time.perf_counter() - t0

    def transform() -> None:
        fp.transform(df, xp=cupy)
        _sync()

    prof = profile_call(transform, top=15)
    prof.pop("stats")
    cupy.get_default_memory_pool().free_all_blocks()
    fit_prof = profile_call(lambda: gpu_fit_transform(df), top=15)
    fit_prof.pop("stats")
    cupy.get_default_memory_pool().free_all_blocks()
    busiest = ", ".join(f"{name.rsplit('/', 1)[-1]} {sec:.2f} s" for name, _, sec in prof["top_own_time"][:4])
    scale = rows / host_rows
    pandas_est, cpu_est = pandas_s * scale, cpu_s * scale
    speed = pandas_est / gpu_s
    ok = diff["max_scaled"] <= FEATURE_RTOL
    goal = "met" if speed >= GOAL_FEATURES_VS_PANDAS else "NOT met"
    detail = (f"{rows:,} rows -> {n_feat} features: GPU fit_transform (strings encoded on the host, CuPy) {gpu_s:.2f} s "
              f"({rows/gpu_s/1e6:.1f} M rows/s), transform alone {apply_s:.2f} s; pandas {pandas_s:.2f} s and Trident "
              f"CPU {cpu_s:.2f} s measured at {host_rows:,} rows, extrapolated per row to {pandas_est:.1f} s and "
              f"{cpu_est:.1f} s -> GPU {speed:.1f}x pandas (goal >= {GOAL_FEATURES_VS_PANDAS:.0f}x: {goal}), "
              f"{cpu_est/gpu_s:.1f}x Trident CPU; first {check:,} rows GPU vs CPU max scaled diff "
              f"{diff['max_scaled']:.1e}; frame built in {make_s:.1f} s; host part of the path (convert, encode "
              f"strings) {host_s:.2f} s; profiled transform {prof['seconds']:.2f} s, most own time: {busiest}")
    return ("ok" if ok else "FAIL"), detail, {
        "rows": rows, "host_rows": host_rows, "features": n_feat, "gpu_fit_transform_s": gpu_s,
        "gpu_transform_s": apply_s, "pandas_s_at_host_rows": pandas_s, "cpu_s_at_host_rows": cpu_s,
        "pandas_s_extrapolated": pandas_est, "cpu_s_extrapolated": cpu_est, "speedup_vs_pandas": speed,
        "extrapolated": True, "parity": diff, "gpu_host_part_s": host_s, "transform_profile": prof,
        "fit_transform_profile": fit_prof}


def check_local_cuda_cluster(rows: int = 50_000, trees: int = 20, kind: str = "local_cuda") -> Result:
    """``cluster=local_cuda`` as a run starts it (:func:`engine.cluster.cluster_client`: one worker per GPU):
    the train stage's CV folds and refit of ``trident_gbdt`` run as Dask tasks on the GPU workers (each
    uploads the rows it receives), with a CV AUC within :data:`GBDT_AUC_TOL` of the in-process GPU run's.
    ``kind="local"`` runs the same glue on CPU workers (how the tests exercise it without a GPU)."""
    if kind == "local_cuda":
        _optional("dask_cuda")
    _optional("hydra")
    _optional("distributed")
    import tempfile

    from engine.backend import compat
    from engine.data.synthetic import make_credit

    frame = make_credit(rows, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        alone = _stage_run(tmp, "in_process", _gpu_backend(), frame, trees, 4)
        t0 = time.perf_counter()
        dist = _stage_run(tmp, "cluster", _gpu_backend(), frame, trees, 4, extra=(f"cluster={kind}",))
        seconds = time.perf_counter() - t0
    ex = dist["executor"]
    want = compat.nvml_gpu_count() if kind == "local_cuda" else None
    workers = int(ex.get("workers", 0))
    workers_ok = ex.get("cluster") == kind and workers >= 1 and (want is None or workers == want)
    scattered = dist["inputs"].startswith("host arrays scattered")
    diff = dist["cv_auc"] - alone["cv_auc"]
    ok = workers_ok and scattered and abs(diff) <= GBDT_AUC_TOL and dist["scored_on"] == "device"
    detail = (f"cluster={kind}: {workers} worker(s){'' if want is None else f' for {want} GPU(s)'}; trident_gbdt "
              f"({trees} trees) folds and refit as Dask tasks, rows uploaded by each worker {scattered}; CV AUC "
              f"{dist['cv_auc']:.4f} vs {alone['cv_auc']:.4f} in-process; train stage {dist['train_s']:.1f} s "
              f"(cluster start included) vs {alone['train_s']:.1f} s; whole run {seconds:.1f} s")
    return ("ok" if ok else "FAIL"), detail, {"executor": ex, "cv_auc": dist["cv_auc"], "cv_auc_in_process":
                                              alone["cv_auc"], "train_s": dist["train_s"],
                                              "train_s_in_process": alone["train_s"], "inputs": dist["inputs"]}


# ------------------------------------------------------------------------------------ main
#: Sizes of a ``--smoke`` run: enough rows for every code path, small enough for the CUDA simulator.
SMOKE_ROWS = 2_000


def _checks(args: argparse.Namespace) -> list[tuple[str, Callable[[], Result], float]]:
    """(name, check, seconds it may take): a check starts only while that much of the budget is left."""
    smoke = bool(getattr(args, "smoke", False))

    def n(rows: int) -> int:
        return SMOKE_ROWS if smoke else rows

    def hook(module: str, **smoke_sizes: int) -> Callable[[], Result]:
        """The module's own ``gpu_check()`` at its default sizes; at ``smoke_sizes`` on a smoke run."""
        return lambda: check_hook(module, **(smoke_sizes if smoke else {}))

    return [
        ("binned_stats C float32 10 bins", lambda: check_binned_stats("C", "float32", 10, rows=n(2_000_000)), 20),
        ("binned_stats F float32 10 bins", lambda: check_binned_stats("F", "float32", 10, rows=n(2_000_000)), 10),
        ("binned_stats C float64 40 bins", lambda: check_binned_stats("C", "float64", 40, rows=n(2_000_000)), 10),
        ("category_counts", lambda: check_category_counts(n(5_000_000)), 10),
        ("hashing", lambda: check_hashing(n(2_000_000)), 15),
        ("gbdt_binning", lambda: check_gbdt_binning(n(2_000_000)), 10),
        ("gbdt_loss", lambda: check_gbdt_loss(n(5_000_000)), 10),
        ("gbdt_hist", hook("kernels.gbdt_hist", rows=SMOKE_ROWS), 20),
        ("gbdt_partition", hook("kernels.gbdt_partition", rows=SMOKE_ROWS), 20),
        ("gbdt_split", hook("kernels.gbdt_split", nodes=4, features=6), 10),
        ("gbdt_predict", hook("kernels.gbdt_predict", rows=SMOKE_ROWS, trees=3), 20),
        ("kernel launch overhead", lambda: check_launch_overhead(5 if smoke else 2000), 10),
        # the drift parity and the three benchmarks with goals next, so that a run cut short still measures them
        ("drift compare CuPy vs NumPy", lambda: check_drift_parity(n(1_000_000)), 15),
        (f"drift bandwidth {n(args.rows):,} x 20", lambda: check_drift_bandwidth(n(args.rows)), 40),
        (f"trident_gbdt CuPy vs NumPy vs sklearn, {n(args.gbdt_rows):,} x 20",
         lambda: check_gbdt_gpu(n(args.gbdt_rows), trees=1 if smoke else 100), 70),
        (f"bench features --backend gpu, {n(args.feature_rows):,} rows",
         lambda: check_features_bench(n(args.feature_rows), n(args.feature_host_rows) // 2), 90),
        ("feature pipeline CuPy vs NumPy", lambda: check_feature_parity(n(200_000)), 20),
        ("features, train and evaluate stages, backend=gpu", lambda: check_stages(n(200_000), trees=2 if smoke else 100, depth=2 if smoke else 6), 40),
        ("LocalCUDACluster: train stage on GPU workers",
         lambda: check_local_cuda_cluster(n(50_000), trees=2 if smoke else 20), 60),
        ("pytest -m gpu", check_gpu_tests, 90),
    ]


#: The CUDA errors after which a process's context cannot be used again, as they read in lower case
#: without ``_``: CuPy says ``cudaErrorIllegalAddress: an illegal memory access was encountered``, Numba
#: and cuda.core ``CUDA_ERROR_ILLEGAL_ADDRESS``.
_STICKY = ("illegaladdress", "illegal memory access", "launchfailed", "launchfailure", "unspecified launch failure",
           "misalignedaddress", "illegalinstruction", "hardwarestack", "invalidpc", "launchtimeout",
           "cudaerrorassert", "device-side assert")


def sticky_cuda_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it chains) is a CUDA error that poisons the process's context."""
    for _ in range(8):
        if exc is None:
            return False
        text = f"{type(exc).__name__}: {exc}".lower().replace("_", "")
        if any(k in text for k in _STICKY):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


#: Where a child run (after a sticky CUDA error) writes its JSON instead of ``$OUT/gpu_check.json``.
CHILD_JSON_ENV = "TRIDENT_GPU_CHECK_JSON"


def _run_rest_in_fresh_process(argv: list[str], names: list[str], budget: float) -> list[dict[str, Any]]:
    """Run the checks ``names`` in a new process (this one's CUDA context is unusable); their rows."""
    import re
    import subprocess
    import tempfile

    keep: list[str] = []
    skip_next = False
    for a in argv:  # this run's options, less the selection and the budget that the child gets anew
        if skip_next:
            skip_next = False
            continue
        if a in ("--only", "--budget"):
            skip_next = True
            continue
        if a.startswith(("--only=", "--budget=")):
            continue
        keep.append(a)
    pattern = "^(" + "|".join(re.escape(n) for n in names) + ")$"
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as d:
        path = Path(d) / "rest.json"
        env = {**os.environ, CHILD_JSON_ENV: str(path)}
        cmd = [sys.executable, str(Path(__file__).resolve()), *keep, "--only", pattern, "--budget", f"{budget:.0f}"]
        print(f"gpu_check: the CUDA context is unusable; {len(names)} remaining check(s) in a fresh process", flush=True)
        try:
            subprocess.run(cmd, cwd=os.getcwd(), env=env, timeout=budget + 120)
        except subprocess.TimeoutExpired:
            pass
        rows = json.loads(path.read_text())["checks"] if path.exists() else []
    done = {r["check"] for r in rows}
    for r in rows:
        r["detail"] = f"{r['detail']} [fresh process after a CUDA error]"
    rows += [{"check": n, "status": "FAIL", "seconds": 0.0, "metrics": {},
              "detail": "not run: the fresh process for the checks after a CUDA error stopped first"}
             for n in names if n not in done]
    return rows


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for m in ("numpy", "numba", "numba_cuda", "cupy", "pandas", "scipy", "sklearn", "hydra", "dask", "dask_cuda"):
        try:
            mod = __import__(m)
            out[m] = str(getattr(mod, "__version__", "?"))
        except Exception:
            out[m] = "absent"
    return out


def _write(payload: dict[str, Any], quiet: bool = False) -> None:
    """``$OUT/gpu_check.json`` (atomically), when ``OUT`` is set (a child run: the file it was given)."""
    out = os.environ.get("OUT")
    child = os.environ.get(CHILD_JSON_ENV)
    if not out and not child:
        return
    from engine.atomic import write_text

    path = Path(child) if child else Path(out) / "gpu_check.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(payload, indent=2, default=str))
    if not quiet:
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
    p.add_argument("--gbdt-rows", type=int, default=1_000_000,
                   help="rows of the trident_gbdt check (x 20 float32; 1M as in python -m bench gbdt)")
    p.add_argument("--feature-rows", type=int, default=20_000_000, help="rows of the GPU feature-pipeline timing")
    p.add_argument("--feature-host-rows", type=int, default=2_000_000,
                   help="rows the pandas baseline and Trident's CPU path are timed on (extrapolated per row)")
    p.add_argument("--budget", type=float, default=420.0,
                   help="seconds of the whole run: a check starts only if its estimated time still fits")
    p.add_argument("--smoke", action="store_true",
                   help=f"run every check on {SMOKE_ROWS:,} rows whether or not a GPU is present (with "
                        "NUMBA_ENABLE_CUDASIM=1 and tests/cupy_standin on PYTHONPATH it runs without one): "
                        "checks that the script itself works, measures nothing")
    p.add_argument("--only", metavar="REGEX", help="run only the checks whose name matches REGEX")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    from engine.backend import gpu_available

    ok, why = gpu_available()
    if not ok and not args.smoke:
        print(f"gpu_check: no GPU on this machine ({why}); nothing to check.")
        _write({"gpu": False, "reason": why, "versions": _versions()})
        return 0
    from engine.backend.hardware import gpus
    from kernels._cuda import numpy_compat

    numpy_compat()  # before Numba CUDA compiles anything (np.row_stack on NumPy >= 2.5)
    device = gpus() if ok else [{"name": "no GPU (smoke run)"}]
    print(f"gpu_check: {device[0]['name'] if device else 'GPU'}; {_versions()}", flush=True)
    rows: list[dict[str, Any]] = []
    import re

    checks = [c for c in _checks(args) if not args.only or re.search(args.only, c[0])]
    if not checks:
        print(f"gpu_check: no check matches --only {args.only!r}", file=sys.stderr)
        return 2
    for i, (name, fn, estimate) in enumerate(checks):
        t0 = time.perf_counter()
        if t0 - t_start + estimate > args.budget:
            rows.append({"check": name, "status": "skip", "seconds": 0.0, "metrics": {},
                         "detail": f"time budget of {args.budget:.0f} s: {t0 - t_start:.0f} s spent, this check "
                                   f"needs about {estimate:.0f} s"})
            continue
        try:
            status, detail, metrics = fn()
        except _Skip as exc:
            status, detail, metrics = "skip", str(exc), {}
        except Exception as exc:  # a failing check is a row, not a crash
            status, detail, metrics = "FAIL", f"{type(exc).__name__}: {exc}", {"traceback": traceback.format_exc()}
            metrics["sticky_cuda_error"] = sticky_cuda_error(exc)
        rows.append({"check": name, "status": status, "seconds": time.perf_counter() - t0, "detail": detail, "metrics": metrics})
        print(f"  {status:<4} {name} ({rows[-1]['seconds']:.1f} s): {detail}", flush=True)
        _write({"gpu": True, "device": device, "versions": _versions(), "smoke": args.smoke, "partial": True,
                "checks": rows}, quiet=True)  # what is done survives a run stopped at its time limit
        rest = [c[0] for c in checks[i + 1:]]
        if metrics.get("sticky_cuda_error") and rest:
            left = args.budget - (time.perf_counter() - t_start)
            rows += _run_rest_in_fresh_process(list(argv if argv is not None else sys.argv[1:]), rest, left)
            break
    table = _table(rows)
    total = time.perf_counter() - t_start
    print(f"\nGPU check on {device[0]['name'] if device else 'GPU'}, {time.strftime('%Y-%m-%d')}, {total:.0f} s\n{table}")
    failed = [r["check"] for r in rows if r["status"] == "FAIL"]
    _write({"gpu": True, "device": device, "versions": _versions(), "smoke": args.smoke, "seconds": total,
            "checks": rows, "table": table, "failed": failed})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
