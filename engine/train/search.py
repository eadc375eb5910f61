"""Seeded hyper-parameter search with k-fold cross-validation, run in-process or as Dask tasks.

The search is planned up front (random search is not adaptive), so every (candidate, trial, fold) fit is
an independent task. A task builds its estimator from the registry with the trial's own seed, pins its
thread count and returns plain numbers: the same plan gives the same scores on any executor.

Example
-------
>>> import numpy as np
>>> from engine.train.search import SearchSettings, plan_trials, make_folds, cross_validate, best_trial
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(300, 4)); y = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
>>> plan = {"logistic": plan_trials({"C": [0.1, 1.0]}, method="grid", n_trials=2, seed=1)}
>>> results = cross_validate(plan, X, y, make_folds(y, "binary", 3, seed=2), SearchSettings("binary"))
>>> round(best_trial(results["logistic"]).mean, 2) > 0.7
True
"""
from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine.errors import ConfigError

#: scoring name -> (task it applies to, higher is better)
SCORINGS = {"roc_auc": "binary", "neg_log_loss": "binary", "neg_rmse": "regression", "r2": "regression"}


def default_scoring(task: str) -> str:
    return "roc_auc" if task == "binary" else "neg_rmse"


@dataclass(frozen=True)
class SearchSettings:
    """How each fit of the search runs (the same for every executor)."""

    task: str
    scoring: str = "auto"
    early_stopping: bool = True
    early_stopping_rounds: int = 20
    early_stopping_fraction: float = 0.1
    #: Preferred estimator library ("sklearn" or "cuml").
    library: str = "sklearn"
    #: Threads one fit uses (OpenMP, BLAS, Numba, ``n_jobs``).
    n_jobs: int = 1
    #: "gpu": estimators that can (cuML, Trident's GBDT) get CuPy arrays, one GPU fit at a time per process.
    device: str = "cpu"

    def __post_init__(self) -> None:
        scoring = default_scoring(self.task) if self.scoring in ("auto", "", None) else self.scoring
        if scoring not in SCORINGS:
            raise ConfigError(f"search.scoring: expected auto or one of {', '.join(SCORINGS)}, got {scoring!r}")
        if SCORINGS[scoring] != self.task:
            raise ConfigError(f"search.scoring: {scoring!r} does not apply to a {self.task} task")
        object.__setattr__(self, "scoring", scoring)
        if int(self.n_jobs) < 1:
            raise ConfigError(f"search.n_jobs: expected a positive thread count, got {self.n_jobs}")


@dataclass(frozen=True)
class Trial:
    """One point of the search space and the seed its estimators use."""

    index: int
    params: dict[str, Any]
    seed: int


@dataclass
class TrialResult:
    """Cross-validated score of one trial."""

    candidate: str
    index: int
    params: dict[str, Any]
    seed: int
    fold_scores: list[float]
    mean: float
    std: float
    seconds: float
    n_iter: list[int | None] = field(default_factory=list)
    error: str | None = None

    def record(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"] = _finite_or_none(self.mean)
        d["std"] = _finite_or_none(self.std)
        d["fold_scores"] = [_finite_or_none(s) for s in self.fold_scores]
        return d


@dataclass
class FitTask:
    """A unit of work for an executor: fit candidate ``candidate`` with ``params`` on one fold
    (``fold >= 0``) or on the whole training split (``fold == -1``)."""

    candidate: str
    trial: int
    fold: int
    params: dict[str, Any]
    seed: int
    settings: SearchSettings


@dataclass(frozen=True)
class DeviceMatrices:
    """The feature matrices already on the GPU (the features stage built them there).

    Estimators that fit device arrays (cuML, Trident's GBDT) index these instead of uploading a host
    copy per fit; ``xp`` is their array namespace (CuPy). Used by in-process searches only: Dask workers
    own their GPUs and upload what they receive.
    """

    xp: Any
    X: Any
    X_val: Any = None

    def rows(self, positions: Any) -> Any:
        """The training matrix's rows at host ``positions`` (moved to the device first)."""
        return self.X[self.xp.asarray(np.asarray(positions, dtype=np.int64))]


# ---- search spaces -------------------------------------------------------------------------------

def _plain(v: Any) -> Any:
    """Python scalars / lists / dicts from OmegaConf nodes and NumPy scalars (JSON-able, sklearn-safe)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(v, (DictConfig, ListConfig)):
            v = OmegaConf.to_container(v, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _finite_or_none(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def normalise_space(space: Mapping[str, Any], where: str = "space") -> dict[str, Any]:
    """Validate a space: each parameter is a non-empty list or ``{low, high, log?, int?}``.

    Raises
    ------
    ConfigError
        Naming the parameter and what is expected.
    """
    out: dict[str, Any] = {}
    for name, dim in _plain(dict(space or {})).items():
        key = f"{where}.{name}"
        if isinstance(dim, list):
            if not dim:
                raise ConfigError(f"{key}: an empty list of values; give at least one value")
            out[name] = dim
        elif isinstance(dim, dict):
            extra = set(dim) - {"low", "high", "log", "int"}
            if extra or "low" not in dim or "high" not in dim:
                raise ConfigError(f"{key}: a range needs exactly low, high and optionally log, int; got "
                                  f"{sorted(dim)}")
            low, high = float(dim["low"]), float(dim["high"])
            log, as_int = bool(dim.get("log", False)), bool(dim.get("int", False))
            if not high > low:
                raise ConfigError(f"{key}: high ({high}) must be greater than low ({low})")
            if log and low <= 0:
                raise ConfigError(f"{key}: a log range needs low > 0, got {low}")
            out[name] = {"low": low, "high": high, "log": log, "int": as_int}
        else:
            out[name] = [dim]  # a single fixed value
    return out


def _draw(dim: Any, rng: np.random.Generator) -> Any:
    if isinstance(dim, list):
        return dim[int(rng.integers(len(dim)))]
    u = float(rng.random())
    if dim["log"]:
        v = math.exp(math.log(dim["low"]) + u * (math.log(dim["high"]) - math.log(dim["low"])))
    else:
        v = dim["low"] + u * (dim["high"] - dim["low"])
    return int(round(v)) if dim["int"] else float(f"{v:.6g}")


def _grid_values(dim: Any, points: int) -> list[Any]:
    if isinstance(dim, list):
        return list(dim)
    if dim["log"]:
        vals = np.geomspace(dim["low"], dim["high"], points)
    else:
        vals = np.linspace(dim["low"], dim["high"], points)
    if dim["int"]:
        return sorted({int(round(v)) for v in vals})
    return [float(f"{v:.6g}") for v in vals]


def derive(seed: int, name: str) -> int:
    """A stable 31-bit seed for ``name`` under ``seed``."""
    from engine.pipeline import derive_seed

    return derive_seed(int(seed), name)


def plan_trials(space: Mapping[str, Any], *, method: str = "random", n_trials: int = 6, seed: int = 0,
                grid_points: int = 3, max_grid: int = 200, where: str = "space") -> list[Trial]:
    """The trials of one candidate's search.

    Random search draws ``n_trials`` distinct points (fewer when the space has fewer), seeded by
    ``seed``; grid search takes every combination (ranges contribute ``grid_points`` values). An empty
    space gives one trial with the estimator's defaults. Each trial gets its own seed.

    Raises
    ------
    ConfigError
        An invalid space, ``n_trials < 1`` or a grid larger than ``max_grid``.
    """
    method = getattr(method, "value", method)
    if method not in ("random", "grid"):
        raise ConfigError(f"search.method: expected random or grid, got {method!r}")
    dims = normalise_space(space, where)
    if int(n_trials) < 1:
        raise ConfigError(f"search.n_trials: expected at least 1, got {n_trials}")
    names = sorted(dims)
    finite = all(isinstance(dims[n], list) for n in names)
    size = math.prod(len(dims[n]) for n in names) if finite else math.inf
    if method == "grid" or size <= n_trials:
        grids = [_grid_values(dims[n], int(grid_points)) for n in names]
        combos = list(itertools.product(*grids))
        if len(combos) > int(max_grid):
            raise ConfigError(f"search.max_grid: the grid of {where} has {len(combos)} combinations "
                              f"(more than {max_grid}); use search.method=random or a smaller space")
        points = [dict(zip(names, c)) for c in combos]
    else:
        rng = np.random.default_rng(int(seed))
        points, seen = [], set()
        for _ in range(int(n_trials) * 50):
            p = {n: _draw(dims[n], rng) for n in names}
            key = repr(sorted(p.items(), key=lambda kv: kv[0]))
            if key in seen:
                continue
            seen.add(key)
            points.append(p)
            if len(points) == int(n_trials):
                break
    return [Trial(i, p, derive(seed, f"trial.{i}")) for i, p in enumerate(points)]


# ---- folds and scores ----------------------------------------------------------------------------

def make_folds(y: np.ndarray, task: str, k: int, seed: int) -> list[np.ndarray]:
    """Validation row positions of each of ``k`` folds (stratified for a binary task), seeded.

    Raises
    ------
    ConfigError
        ``k < 2`` or more folds than the rarer class has rows.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(y)
    k = int(k)
    if k < 2:
        raise ConfigError(f"search.folds: expected at least 2 folds, got {k}")
    if task == "binary":
        counts = np.bincount(y.astype(np.int64), minlength=2)
        if counts.min() < k:
            raise ConfigError(f"search.folds: {k} folds need at least {k} rows of each class in the "
                              f"training split; it has {counts.tolist()} (classes 0, 1)")
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=int(seed))
        parts = splitter.split(np.zeros(len(y)), y)
    else:
        if len(y) < k:
            raise ConfigError(f"search.folds: {k} folds need at least {k} training rows, got {len(y)}")
        parts = KFold(n_splits=k, shuffle=True, random_state=int(seed)).split(np.zeros(len(y)))
    return [np.sort(valid).astype(np.int64) for _, valid in parts]


def score(scoring: str, estimator: Any, X: Any, y: np.ndarray) -> float:
    """Higher-is-better score of a fitted estimator on ``(X, y)``."""
    from engine.backend import to_numpy

    y = np.asarray(y)
    if scoring in ("roc_auc", "neg_log_loss"):
        from sklearn.metrics import log_loss, roc_auc_score

        if hasattr(estimator, "predict_proba"):
            p = np.asarray(to_numpy(estimator.predict_proba(X)), dtype=np.float64)
            p = p[:, 1] if p.ndim == 2 else p
        else:
            p = np.asarray(to_numpy(estimator.decision_function(X)), dtype=np.float64)
        if scoring == "roc_auc":
            return float(roc_auc_score(y, p))
        return -float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]))
    pred = np.asarray(to_numpy(estimator.predict(X)), dtype=np.float64).ravel()
    if scoring == "neg_rmse":
        return -float(np.sqrt(np.mean((y.astype(np.float64) - pred) ** 2)))
    from sklearn.metrics import r2_score

    return float(r2_score(y, pred))


# ---- thread pinning --------------------------------------------------------------------------------

_BLAS_LOCK = threading.Lock()
_BLAS_DEPTH = 0
_BLAS_CTL: Any = None


@contextlib.contextmanager
def pinned_threads(n: int) -> Iterator[None]:
    """Run the body with ``n`` OpenMP / Numba threads (per calling thread) and ``n`` BLAS threads
    (process-wide while any pinned body runs), so a fit computes the same thing on every executor."""
    global _BLAS_DEPTH, _BLAS_CTL
    from threadpoolctl import threadpool_limits

    with _BLAS_LOCK:
        if _BLAS_DEPTH == 0:
            _BLAS_CTL = threadpool_limits(limits=n, user_api="blas")
        _BLAS_DEPTH += 1
    numba_prev = None
    try:
        import sys

        if "numba" in sys.modules:
            import numba

            numba_prev = numba.get_num_threads()
            numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
        with threadpool_limits(limits=n, user_api="openmp"):
            yield
    finally:
        if numba_prev is not None:
            import numba

            numba.set_num_threads(numba_prev)
        with _BLAS_LOCK:
            _BLAS_DEPTH -= 1
            if _BLAS_DEPTH == 0 and _BLAS_CTL is not None:
                _BLAS_CTL.restore_original_limits()
                _BLAS_CTL = None


# ---- the tasks (top-level functions: they run on Dask workers) ------------------------------------

_DEVICE_LOCK = threading.Lock()


def _wants_device(settings: SearchSettings, candidate: str, library: str) -> bool:
    """Whether this fit runs on the GPU with device arrays (cuML, Trident's GBDT on a GPU run)."""
    from engine.train import registry

    return settings.device == "gpu" and registry.takes_device_arrays(candidate, library)


@contextlib.contextmanager
def _device_inputs(on_gpu: bool, *arrays: Any, xp: Any = None) -> Iterator[list[Any]]:
    """The arrays on the GPU (``xp``, else CuPy; arrays already there stay as they are) with the
    process's GPU held, when ``on_gpu``; else the arrays unchanged."""
    if on_gpu and xp is None:
        from engine.backend import compat

        xp = compat.cupy()
    if not on_gpu or xp is None:
        yield list(arrays)
        return
    with _DEVICE_LOCK:
        yield [None if a is None else xp.asarray(a) for a in arrays]


def _aligned(a: Any) -> Any:
    """A NumPy array as C-contiguous memory aligned for its dtype (copied only when it is not).

    Arrays a Dask worker receives can sit at any byte offset; numerical kernels take other code paths
    on unaligned memory and round differently, so every task works on aligned copies.
    """
    if isinstance(a, np.ndarray) and not (a.flags.aligned and a.flags.c_contiguous):
        return np.require(a, requirements=["C", "A"])
    return a


def fit_fold(task: FitTask, X: Any, y: np.ndarray, folds: Sequence[np.ndarray],
             device: DeviceMatrices | None = None) -> dict[str, Any]:
    """Fit ``task.candidate`` on every fold but ``task.fold`` and score it on that fold.

    ``device`` holds ``X`` already on the GPU: estimators that fit device arrays take their rows from
    it. Estimator errors are returned (``error``), not raised, so one bad point does not end a search.
    """
    from engine.train import registry

    s = task.settings
    X, y = _aligned(X), _aligned(np.asarray(y))
    valid = folds[task.fold]
    mask = np.ones(len(y), dtype=bool)
    mask[valid] = False
    train = np.flatnonzero(mask)
    es = registry.EarlyStopping(s.early_stopping_rounds, s.early_stopping_fraction) if s.early_stopping else None
    t0 = time.perf_counter()
    out: dict[str, Any] = {"candidate": task.candidate, "trial": task.trial, "fold": task.fold}
    try:
        with pinned_threads(s.n_jobs):
            built = registry.build_estimator(task.candidate, s.task, task.params, seed=task.seed,
                                             library=s.library, n_jobs=s.n_jobs, early_stopping=es)
            on_gpu = _wants_device(s, task.candidate, built.library)
            Xt, Xv = (device.rows(train), device.rows(valid)) if on_gpu and device else (X[train], X[valid])
            with _device_inputs(on_gpu, Xt, y[train], Xv, xp=device.xp if device else None) as (Xt, yt, Xv):
                est = registry.fit_estimator(task.candidate, built.estimator, Xt, yt)
                out["score"] = score(s.scoring, est, Xv, y[valid])
        out["n_iter"] = registry.n_iterations(est)
        out["library"] = built.library
        out["error"] = None
    except ConfigError:
        raise
    except Exception as exc:  # an estimator refusing a parameter combination, a singular fit, ...
        out.update(score=float("nan"), n_iter=None, library=s.library, error=f"{type(exc).__name__}: {exc}")
    out["seconds"] = time.perf_counter() - t0
    return out


def fit_full(task: FitTask, X: Any, y: np.ndarray, X_val: Any = None, y_val: Any = None,
             device: DeviceMatrices | None = None) -> dict[str, Any]:
    """Refit ``task.candidate`` with ``task.params`` on the whole training split, early-stopping on
    ``(X_val, y_val)`` where the model supports it; returns the fitted estimator and its validation score.

    ``device`` holds ``X`` and ``X_val`` already on the GPU (see :func:`fit_fold`)."""
    from engine.train import registry

    s = task.settings
    X, y, X_val, y_val = (_aligned(a) for a in (X, y, X_val, y_val))
    spec = registry.get_spec(task.candidate)
    use_val = s.early_stopping and spec.supports_early_stopping and X_val is not None
    es = registry.EarlyStopping(s.early_stopping_rounds, s.early_stopping_fraction) if s.early_stopping else None
    t0 = time.perf_counter()
    with pinned_threads(s.n_jobs):
        built = registry.build_estimator(task.candidate, s.task, task.params, seed=task.seed,
                                         library=s.library, n_jobs=s.n_jobs, early_stopping=es)
        on_gpu = _wants_device(s, task.candidate, built.library)
        if on_gpu and device:
            X = device.X
            X_val = device.X_val if device.X_val is not None else X_val
        with _device_inputs(on_gpu, X, y, X_val, y_val, xp=device.xp if device else None) as (Xd, yd, Xvd, yvd):
            est = registry.fit_estimator(task.candidate, built.estimator, Xd, yd,
                                         Xvd if use_val else None, yvd if use_val else None)
            seconds = time.perf_counter() - t0
            val = score(s.scoring, est, Xvd, y_val) if X_val is not None and len(y_val) else None
    return {"candidate": task.candidate, "estimator": est, "library": built.library, "notes": built.notes,
            "seconds": seconds, "n_iter": registry.n_iterations(est), "valid_score": val,
            "early_stopped_on": "validation split" if use_val else (
                "inner validation share" if (es is not None and spec.supports_early_stopping) else None)}


# ---- driving a search ----------------------------------------------------------------------------

def cross_validate(plans: Mapping[str, Sequence[Trial]], X: Any, y: np.ndarray, folds: Sequence[np.ndarray],
                   settings: SearchSettings, client: Any = None, description: str = "search",
                   device: DeviceMatrices | None = None) -> dict[str, list[TrialResult]]:
    """Score every trial of every candidate by k-fold cross-validation.

    Parameters
    ----------
    plans : mapping
        candidate name -> its trials (:func:`plan_trials`).
    X, y : arrays
        The training split (features and target).
    folds : list of arrays
        Validation positions per fold (:func:`make_folds`).
    settings : SearchSettings
    client : distributed.Client, optional
        Run every (candidate, trial, fold) fit as a Dask task; in-process when ``None``.
    device : DeviceMatrices, optional
        ``X`` already on the GPU, for estimators that fit device arrays (in-process runs only: with a
        client it is ignored and each worker uploads what it receives).

    Returns
    -------
    dict
        candidate -> one :class:`TrialResult` per trial, in trial order.
    """
    from engine.cluster import run_tasks

    y = np.asarray(y)
    tasks = [FitTask(name, t.index, f, dict(t.params), int(t.seed), settings)
             for name, trials in plans.items() for t in trials for f in range(len(folds))]
    shared = {"X": X, "y": y, "folds": list(folds)}
    if device is not None and client is None:
        shared["device"] = device
    outs = run_tasks(fit_fold, tasks, shared, client=client,
                     description=f"{description}: {len(tasks)} fits", n_jobs=settings.n_jobs)
    by_key = {(o["candidate"], o["trial"], o["fold"]): o for o in outs}
    results: dict[str, list[TrialResult]] = {}
    for name, trials in plans.items():
        res = []
        for t in trials:
            fo = [by_key[(name, t.index, f)] for f in range(len(folds))]
            scores = [float(o["score"]) for o in fo]
            errors = [o["error"] for o in fo if o["error"]]
            arr = np.asarray(scores, dtype=np.float64)
            ok = not errors and bool(np.all(np.isfinite(arr)))
            res.append(TrialResult(
                candidate=name, index=t.index, params=dict(t.params), seed=int(t.seed), fold_scores=scores,
                mean=float(arr.mean()) if ok else float("nan"), std=float(arr.std()) if ok else float("nan"),
                seconds=float(sum(o["seconds"] for o in fo)), n_iter=[o["n_iter"] for o in fo],
                error=errors[0] if errors else None))
        results[name] = res
    return results


def best_trial(results: Sequence[TrialResult]) -> TrialResult | None:
    """The trial with the highest mean CV score (the earliest on a tie); ``None`` if every trial failed."""
    ok = [r for r in results if r.error is None and math.isfinite(r.mean)]
    if not ok:
        return None
    return max(ok, key=lambda r: (r.mean, -r.index))


def refit(best: Mapping[str, TrialResult], X: Any, y: np.ndarray, X_val: Any, y_val: Any,
          settings: SearchSettings, client: Any = None, description: str = "refit",
          device: DeviceMatrices | None = None) -> dict[str, dict[str, Any]]:
    """Refit each candidate's best trial on the whole training split (one task per candidate);
    ``device`` as in :func:`cross_validate`."""
    from engine.cluster import run_tasks

    tasks = [FitTask(name, r.index, -1, dict(r.params), int(r.seed), settings) for name, r in best.items()]
    shared = {"X": X, "y": np.asarray(y), "X_val": X_val, "y_val": None if y_val is None else np.asarray(y_val)}
    if device is not None and client is None:
        shared["device"] = device
    outs = run_tasks(fit_full, tasks, shared, client=client, description=f"{description}: {len(tasks)} models", n_jobs=settings.n_jobs)
    return {o["candidate"]: o for o in outs}
