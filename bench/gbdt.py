"""Gradient-boosted trees: trident_gbdt beside scikit-learn HistGradientBoosting, LightGBM and XGBoost.

``python -m bench gbdt [--rows N] [--features F] [--iterations I] [--device cpu|gpu]``

Data: ``make_classification(rows + test rows, features)`` as float32 (default 1M x 20, plus 20% more
rows held out). Every model gets the same settings: depth-wise trees of depth 6, learning rate 0.1,
``--iterations`` trees, 255 bins, no L2, at least 20 rows per leaf (XGBoost has no such constraint;
its ``min_child_weight`` is set to the same 1e-3 hessian floor), early stopping off, all cores. For each
the table shows the fit time, the held-out ROC AUC and the prediction throughput (rows/s) on the
held-out rows, all in the same run on the same data. LightGBM and XGBoost (the project's optional
``bench`` extra) are used when importable, and shown as "not installed" otherwise.

``--device gpu``: the data on the GPU as CuPy arrays; trident_gbdt trains and predicts there with
the CUDA twins (data stays on the device). Shown beside scikit-learn on the machine's CPU cores and
trident_gbdt's CPU path, same data. ``gpu_check_rows()`` runs the same comparison for
``bench/gpu_check.py``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DEPTH = 6
LEARNING_RATE = 0.1
BINS = 255
MIN_LEAF = 20


def make_data(rows: int, features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test), float32 features; the test set is 20% of ``rows`` more."""
    from sklearn.datasets import make_classification

    n_test = max(1000, rows // 5)
    X, y = make_classification(n_samples=rows + n_test, n_features=features, random_state=seed)
    X = X.astype(np.float32)
    return X[:rows], y[:rows], X[rows:], y[rows:]


def _models(iterations: int) -> dict[str, Any]:
    """name -> zero-argument factory, or a "not installed" string."""
    import os

    from sklearn.ensemble import HistGradientBoostingClassifier

    from engine.train.gbdt import TridentGBDTClassifier

    cores = os.cpu_count() or 1
    out: dict[str, Any] = {
        "trident_gbdt": lambda: TridentGBDTClassifier(
            n_estimators=iterations, max_depth=DEPTH, learning_rate=LEARNING_RATE, max_bins=BINS,
            min_samples_leaf=MIN_LEAF, l2_regularization=0.0, random_state=0),
        "sklearn HistGradientBoosting": lambda: HistGradientBoostingClassifier(
            max_iter=iterations, max_depth=DEPTH, max_leaf_nodes=None, learning_rate=LEARNING_RATE, max_bins=BINS,
            min_samples_leaf=MIN_LEAF, l2_regularization=0.0, early_stopping=False, random_state=0),
    }
    try:
        import lightgbm

        out["LightGBM"] = lambda: lightgbm.LGBMClassifier(
            n_estimators=iterations, max_depth=DEPTH, num_leaves=2**DEPTH, learning_rate=LEARNING_RATE, max_bin=BINS,
            min_child_samples=MIN_LEAF, min_child_weight=1e-3, reg_lambda=0.0, n_jobs=cores, verbose=-1, random_state=0)
    except ImportError:
        out["LightGBM"] = "not installed"
    try:
        import xgboost

        out["XGBoost"] = lambda: xgboost.XGBClassifier(
            n_estimators=iterations, max_depth=DEPTH, learning_rate=LEARNING_RATE, tree_method="hist", max_bin=BINS + 1,
            reg_lambda=0.0, min_child_weight=1e-3, n_jobs=cores, random_state=0)
    except ImportError:
        out["XGBoost"] = "not installed"
    return out


def _sync(xp: Any) -> None:
    if xp is not np:
        xp.cuda.Device().synchronize()


def measure(name: str, factory: Any, X: Any, y: Any, Xt: Any, yt: np.ndarray) -> dict[str, Any]:
    """Fit and predict once (after a small warm-up fit that compiles what a first call compiles)."""
    from sklearn.metrics import roc_auc_score

    from engine.backend import get_namespace, to_numpy

    xp = get_namespace(X)
    factory().set_params(**_tiny_params(name)).fit(X[:2000], y[:2000]).predict_proba(Xt[:100])  # compiles the kernels
    _sync(xp)
    t0 = time.perf_counter()
    model = factory().fit(X, y)
    _sync(xp)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    proba = model.predict_proba(Xt)
    _sync(xp)
    pred_s = time.perf_counter() - t0
    auc = roc_auc_score(yt, np.asarray(to_numpy(proba))[:, 1])
    return {"model": name, "fit_s": fit_s, "auc": float(auc), "predict_rows_per_s": Xt.shape[0] / pred_s}


def _tiny_params(name: str) -> dict[str, Any]:
    if name.startswith("sklearn"):
        return {"max_iter": 2}
    return {"n_estimators": 2}


def _row(r: dict[str, Any], fastest: float) -> list[Any]:
    if "note" in r:
        return [r["model"], r["note"], "", "", ""]
    return [r["model"], r["fit_s"], f"{r['fit_s'] / fastest:.2f}x", r["auc"], f"{r['predict_rows_per_s']:,.0f}"]


def run_cpu(rows: int, features: int, iterations: int) -> dict[str, Any]:
    from bench.common import print_table

    X, y, Xt, yt = make_data(rows, features)
    results = []
    for name, factory in _models(iterations).items():
        if isinstance(factory, str):
            results.append({"model": name, "note": factory})
            continue
        results.append(measure(name, factory, X, y, Xt, yt))
        print(f"  {name}: fit {results[-1]['fit_s']:.2f} s, AUC {results[-1]['auc']:.4f}", flush=True)
    timed = [r for r in results if "fit_s" in r]
    fastest = min(r["fit_s"] for r in timed)
    ours = next(r for r in timed if r["model"] == "trident_gbdt")
    title = (f"gbdt: {rows:,} x {features} float32 (make_classification), {iterations} trees of depth {DEPTH}, "
             f"lr {LEARNING_RATE}, {BINS} bins; test {Xt.shape[0]:,} rows")
    print_table(title, ["model", "fit s", "vs fastest", "ROC AUC", "predict rows/s"], [_row(r, fastest) for r in results])
    verdict = ours["fit_s"] <= 1.5 * fastest
    print(f"goal: trident_gbdt within 1.5x of the fastest fit: {ours['fit_s'] / fastest:.2f}x -> "
          f"{'met' if verdict else 'NOT met'}")
    return {"rows": rows, "features": features, "iterations": iterations, "results": results,
            "trident_vs_fastest": ours["fit_s"] / fastest}


def _warm_up(factory: Any, X: Any, y: Any) -> None:
    """A 2-tree fit on 2,000 rows: compiles what a first fit compiles, so the timed fit does not."""
    from engine.backend import get_namespace

    factory().set_params(n_estimators=2).fit(X[:2000], y[:2000])
    _sync(get_namespace(X))


def profile_fit(factory: Any, X: Any, y: Any, top: int = 12) -> dict[str, Any]:
    """Where a fit's host time goes (cProfile, one fit after a warm-up): on a GPU, small trees are bound
    by kernel launches and device-to-host syncs, not by the kernels themselves.

    Returns the fit's seconds under the profiler, the CUDA kernel launches (calls and host seconds of
    :func:`kernels._cuda.launch`), and the ``top`` functions by own time and by cumulative time in this
    repository's code (``file:line name``, calls, seconds).
    """
    from bench.common import profile_call
    from engine.backend import get_namespace

    _warm_up(factory, X, y)
    xp = get_namespace(X)

    def fit() -> None:
        factory().fit(X, y)
        _sync(xp)

    prof = profile_call(fit, top)
    stats = prof.pop("stats")
    # every launch goes through kernels._cuda.launch (the fast path, or Numba's dispatcher within it)
    launches = [v for k, v in stats.items() if k[0].endswith("kernels/_cuda.py") and k[2] == "launch"]
    return {**prof, "kernel_launches": int(sum(v[1] for v in launches)),
            "launch_seconds": float(sum(v[3] for v in launches))}


#: The kernel entry points a fit calls, by family (module, function): what :func:`device_times` times.
FIT_KERNELS = (
    ("binning", "kernels.gbdt_binning", "bin_edges"), ("binning", "kernels.gbdt_binning", "apply_bins"),
    ("gradients", "kernels.gbdt_loss", "gradients"), ("histograms", "kernels.gbdt_hist", "build_histograms"),
    ("histograms", "kernels.gbdt_hist", "subtract_histograms"), ("split search", "kernels.gbdt_split", "find_splits"),
    ("partition", "kernels.gbdt_partition", "partition_rows"), ("leaf values", "kernels.gbdt_predict", "add_leaf_values"),
    ("leaf values", "kernels.gbdt_predict", "predict_binned"),
)
#: The level kernels of device-resident growth (:mod:`kernels.gbdt_level`, launched by
#: :mod:`engine.train.gbdt_device`), by family: :func:`device_times` times each launch.
LEVEL_FAMILIES = {
    "root_plan": "level plans", "plan_level": "level plans", "root_sums": "histograms", "zero_level": "histograms",
    "build_level": "histograms", "subtract_level": "histograms", "split_level": "split search",
    "count_level": "partition", "offsets_level": "partition", "scatter_level": "partition", "add_tree": "leaf values",
}


def device_times(factory: Any, X: Any, y: Any) -> dict[str, Any]:
    """GPU-timeline milliseconds of one fit's calls, by kernel family (CUDA events recorded around each
    call of :data:`FIT_KERNELS` and each launch of a level kernel, :data:`LEVEL_FAMILIES`; a span also
    holds any wait for the host to launch), beside the fit's wall time: what the device is busy with,
    and how much of the fit it is idle."""
    import importlib

    import cupy

    spans: dict[str, list[tuple[Any, Any]]] = {}
    patched = []

    def timed(family: str, fn: Any) -> Any:
        def call(*args: Any, **kw: Any) -> Any:
            start, stop = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            out = fn(*args, **kw)
            stop.record()
            spans.setdefault(family, []).append((start, stop))
            return out

        return call

    _warm_up(factory, X, y)
    for family, module, name in FIT_KERNELS:
        mod = importlib.import_module(module)
        patched.append((mod, name, getattr(mod, name)))
        setattr(mod, name, timed(family, getattr(mod, name)))
    dev = importlib.import_module("engine.train.gbdt_device")
    level_launch = dev.launch

    def launch(kernel: Any, *args: Any) -> None:
        name = getattr(getattr(kernel, "py_func", kernel), "__name__", "")
        timed(LEVEL_FAMILIES.get(name, "level plans"), level_launch)(kernel, *args)

    patched.append((dev, "launch", level_launch))
    dev.launch = launch
    try:
        t0 = time.perf_counter()
        factory().fit(X, y)
        _sync(cupy)
        wall = time.perf_counter() - t0
    finally:
        for mod, name, fn in patched:
            setattr(mod, name, fn)
    ms = {f: float(sum(cupy.cuda.get_elapsed_time(a, b) for a, b in v)) for f, v in spans.items()}
    return {"wall_s": wall, "device_ms": ms, "calls": {f: len(v) for f, v in spans.items()},
            "busy_share": sum(ms.values()) / 1e3 / wall if wall > 0 else 0.0}


def gpu_check_rows(rows: int = 1_000_000, features: int = 20, iterations: int = 100,
                   data: tuple[Any, ...] | None = None) -> list[dict[str, Any]]:
    """trident_gbdt on the GPU (CuPy input) beside scikit-learn and trident_gbdt on the CPU cores.

    ``data``: ``make_data(rows, features)`` when the caller has it already. Returns one dict per
    model: ``model``, ``fit_s``, ``auc``, ``predict_rows_per_s`` and, for the GPU row,
    ``speedup_vs_sklearn`` and ``auc_diff_vs_cpu``.
    """
    import cupy

    X, y, Xt, yt = data if data is not None else make_data(rows, features)
    models = _models(iterations)
    out = [measure("sklearn HistGradientBoosting (CPU)", models["sklearn HistGradientBoosting"], X, y, Xt, yt),
           measure("trident_gbdt (CPU)", models["trident_gbdt"], X, y, Xt, yt)]
    gpu = measure("trident_gbdt (GPU, CuPy)", models["trident_gbdt"], cupy.asarray(X), cupy.asarray(y), cupy.asarray(Xt), yt)
    gpu["speedup_vs_sklearn"] = out[0]["fit_s"] / gpu["fit_s"]
    gpu["auc_diff_vs_cpu"] = gpu["auc"] - out[1]["auc"]
    out.append(gpu)
    return out


def run_gpu(rows: int, features: int, iterations: int) -> dict[str, Any]:
    from bench.common import print_table

    results = gpu_check_rows(rows, features, iterations)
    gpu = results[-1]
    rows_out = [[r["model"], r["fit_s"], r["auc"], f"{r['predict_rows_per_s']:,.0f}"] for r in results]
    print_table(f"gbdt on the GPU: {rows:,} x {features} float32, {iterations} trees of depth {DEPTH}",
                ["model", "fit s", "ROC AUC", "predict rows/s"], rows_out)
    print(f"goal: GPU fit at least 10x faster than scikit-learn on this machine's CPU cores: "
          f"{gpu['speedup_vs_sklearn']:.1f}x -> {'met' if gpu['speedup_vs_sklearn'] >= 10 else 'NOT met'}")
    return {"rows": rows, "features": features, "iterations": iterations, "results": results}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench gbdt", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    args = p.parse_args(argv)
    from bench.common import write_results

    t0 = time.perf_counter()
    if args.device == "gpu":
        payload = run_gpu(args.rows, args.features, args.iterations)
    else:
        payload = run_cpu(args.rows, args.features, args.iterations)
    payload["wall_seconds"] = time.perf_counter() - t0
    write_results("gbdt_gpu" if args.device == "gpu" else "gbdt", payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
