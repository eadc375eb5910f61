"""Training: fit time, predict throughput and ROC AUC of every binary candidate of the model registry.

``python -m bench train [--rows N] [--candidates a,b] [--n-jobs N] [--seed S] [--rf-trees N] [--rf-depth D]
[--rf-rows N] [--no-early-stopping]``

Data: scikit-learn ``make_classification`` (``--rows`` x 20 float32 features, 10 informative,
``random_state=--seed``), 20% held out (stratified) for ROC AUC and prediction throughput.

Each candidate is built and fitted through :mod:`engine.train.registry` exactly as ``trident run`` does
(``build_estimator`` + ``fit_estimator`` inside ``pinned_threads(n_jobs)``), with its default
parameters: the estimator's own defaults plus the registry's fixed parameters, and early stopping on an
inner 10% share for the candidates that support it (``trident run``'s default search settings). No
search is run. The scikit-learn candidates (logistic, random_forest, hist_gbdt) are the baselines;
trident_gbdt is Trident's own boosted trees.

random_forest's default (100 fully grown trees) takes many minutes on 1M rows with 2 cores, so it is
capped by default to ``n_estimators=50, max_depth=12`` (``--rf-trees 0 --rf-depth 0`` restores the
registry default); ``--rf-rows`` fits it on a stratified subsample of the training rows. The params
column of the table says what each candidate was fitted with.

Every candidate is first fitted once on 2,000 rows (not timed) so that JIT compilation and library
start-up stay out of the timings. Peak memory is the growth of resident memory during the fit (freed
heap memory is handed back to the OS before each fit). On a machine whose cores are busy with other
work, OpenMP models (hist_gbdt) slow down sharply with ``--n-jobs`` above the idle core count; use
``--n-jobs 1`` there.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from bench.common import fmt_bytes, measure, print_table, write_results

N_FEATURES = 20
WARMUP_ROWS = 2_000


# ------------------------------------------------------------------------------------------ data
def make_data(rows: int, n_features: int = N_FEATURES, seed: int = 0) -> tuple[np.ndarray, ...]:
    """``(X_train, X_test, y_train, y_test)``: make_classification, float32 features, 20% held out."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    informative = min(10, max(2, n_features - 2))
    redundant = min(2, n_features - informative)
    X, y = make_classification(n_samples=rows, n_features=n_features, n_informative=informative,
                               n_redundant=redundant, random_state=seed)
    X = X.astype(np.float32)
    return tuple(train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed))


def binary_candidates() -> list[str]:
    """Registry names that build an estimator for the binary task, in ``model.candidates``' default order."""
    from engine.errors import TridentError
    from engine.train import registry
    from engine.train.config import ModelConfig

    order = ModelConfig().candidates
    out = []
    for name in sorted(registry.available(), key=lambda n: (order.index(n) if n in order else len(order), n)):
        try:
            registry.build_estimator(name, "binary")
        except (TridentError, ImportError):
            continue
        out.append(name)
    return out


def subsample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a stratified sample of ``n`` rows of ``y``."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    if n >= len(y):
        return idx
    keep, _ = train_test_split(idx, train_size=n, stratify=y, random_state=seed)
    return np.sort(keep)


# ------------------------------------------------------------------------------------- settings
def candidate_params(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Parameters passed to ``build_estimator`` on top of the registry's fixed ones."""
    if name != "random_forest":
        return {}
    params: dict[str, Any] = {}
    if args.rf_trees:
        params["n_estimators"] = int(args.rf_trees)
    if args.rf_depth:
        params["max_depth"] = int(args.rf_depth)
    return params


def params_note(name: str, params: dict[str, Any], early_stopping: Any, fit_rows: int, train_rows: int) -> str:
    """What the candidate was fitted with, for the table."""
    from engine.train import registry

    spec = registry.get_spec(name)
    parts = [f"capped: {', '.join(f'{k}={v}' for k, v in params.items())}" if params else "defaults"]
    parts += [f"{k}={v} (registry)" for k, v in spec.fixed.items() if k not in params]
    if early_stopping is not None and spec.supports_early_stopping:
        parts.append(f"early stop {early_stopping.rounds} rounds on {early_stopping.fraction:.0%}")
    if fit_rows < train_rows:
        parts.append(f"fit on {fit_rows:,} rows")
    return "; ".join(parts)


# ------------------------------------------------------------------------------------------ run
def release_freed_memory() -> None:
    """Hand memory freed by earlier fits back to the OS (glibc ``malloc_trim``), so that the next fit's
    RSS growth is not hidden by pages the allocator still holds; a no-op elsewhere."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def fit_candidate(name: str, params: dict[str, Any], X: np.ndarray, y: np.ndarray, *, seed: int, n_jobs: int,
                  early_stopping: Any) -> tuple[str, Any]:
    """Build and fit ``name`` the way ``trident run`` refits a candidate (CPU, scikit-learn library);
    returns the estimator's library and the fitted estimator."""
    from engine.train import registry
    from engine.train.search import pinned_threads

    with pinned_threads(n_jobs):
        built = registry.build_estimator(name, "binary", params, seed=seed, library="sklearn", n_jobs=n_jobs,
                                         early_stopping=early_stopping)
        est = registry.fit_estimator(name, built.estimator, X, y)
    return built.library, est


def positive_proba(est: Any, X: np.ndarray, n_jobs: int) -> np.ndarray:
    """Probability of the positive class, predicted on ``n_jobs`` threads."""
    from engine.train.search import pinned_threads

    with pinned_threads(n_jobs):
        return np.asarray(est.predict_proba(X))[:, 1]


def bench_candidate(name: str, data: tuple[np.ndarray, ...], args: argparse.Namespace) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    from engine.train import registry

    X_train, X_test, y_train, y_test = data
    es = None if args.no_early_stopping else registry.EarlyStopping()
    params = candidate_params(name, args)
    rows = np.arange(len(y_train))
    if name == "random_forest" and args.rf_rows:
        rows = subsample(y_train, int(args.rf_rows), args.seed)
    Xf, yf = (X_train, y_train) if len(rows) == len(y_train) else (X_train[rows], y_train[rows])

    warm = subsample(y_train, WARMUP_ROWS, args.seed)
    _, warm_est = fit_candidate(name, params, X_train[warm], y_train[warm], seed=args.seed, n_jobs=args.n_jobs,
                                early_stopping=es)
    positive_proba(warm_est, X_test[:WARMUP_ROWS], args.n_jobs)
    del warm_est

    release_freed_memory()
    fit = measure(lambda: fit_candidate(name, params, Xf, yf, seed=args.seed, n_jobs=args.n_jobs,
                                        early_stopping=es))
    library, est = fit.value
    pred = measure(lambda: positive_proba(est, X_test, args.n_jobs))
    auc = float(roc_auc_score(y_test, pred.value))
    return {
        "candidate": name, "library": library,
        "params": params_note(name, params, es, len(yf), len(y_train)),
        "fit_rows": int(len(yf)), "rounds": registry.n_iterations(est),
        "fit_s": fit.seconds, "fit_peak_bytes": fit.peak_bytes,
        "predict_s": pred.seconds, "predict_rows_per_s": len(y_test) / pred.seconds, "roc_auc": auc,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench train", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows generated (20%% held out); default 1,000,000")
    ap.add_argument("--features", type=int, default=N_FEATURES, help=argparse.SUPPRESS)
    ap.add_argument("--candidates", default="", help="comma-separated registry names (default: every binary one)")
    ap.add_argument("--n-jobs", type=int, default=2, help="threads per fit (trident run's search.n_jobs)")
    ap.add_argument("--seed", type=int, default=0, help="data and estimator seed")
    ap.add_argument("--rf-trees", type=int, default=50, help="random_forest n_estimators (0 = registry default)")
    ap.add_argument("--rf-depth", type=int, default=12, help="random_forest max_depth (0 = registry default)")
    ap.add_argument("--rf-rows", type=int, default=0, help="fit random_forest on this many training rows (0 = all)")
    ap.add_argument("--no-early-stopping", action="store_true", help="fit every boosting round")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results/train.json")
    args = ap.parse_args(argv)

    from engine.errors import ConfigError
    from engine.train import registry

    names = [c.strip() for c in args.candidates.split(",") if c.strip()] or binary_candidates()
    try:
        for n in names:
            registry.get_spec(n)
    except ConfigError as exc:
        print(f"bench train: --candidates: {exc}", file=sys.stderr)
        return 2

    data = make_data(args.rows, args.features, args.seed)
    print(f"train: {args.rows:,} rows x {args.features} float32 features ({len(data[2]):,} train / "
          f"{len(data[3]):,} held out), n_jobs={args.n_jobs}, seed={args.seed}", flush=True)
    results = []
    for name in names:
        print(f"  fitting {name} ...", flush=True)
        results.append(bench_candidate(name, data, args))

    fastest = min(r["fit_s"] for r in results)
    rows = [[r["candidate"], r["library"], r["params"], "-" if r["rounds"] is None else r["rounds"], r["fit_s"],
             f"{r['fit_s'] / fastest:.1f}x", f"{r['predict_rows_per_s']:,.0f}", f"{r['roc_auc']:.4f}",
             fmt_bytes(r["fit_peak_bytes"])] for r in results]
    table = print_table(
        f"Training on {args.rows:,} x {args.features} (make_classification, 20% held out), n_jobs={args.n_jobs}; "
        f"baselines: the scikit-learn candidates",
        ["candidate", "library", "params", "rounds", "fit s", "fit vs fastest", "predict rows/s", "ROC AUC",
         "peak RSS growth (fit)"], rows)
    if not args.no_write:
        write_results("train", {"rows": args.rows, "features": args.features, "n_jobs": args.n_jobs,
                                "seed": args.seed, "candidates": results, "table": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
