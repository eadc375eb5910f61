"""Estimator registry: candidate name -> factory, default search space and what the model supports.

Every candidate is built the same way, from its name, the task, its parameters and a seed::

    built = build_estimator("hist_gbdt", "binary", {"learning_rate": 0.1}, seed=7)
    built.estimator.fit(X, y)

The estimator library follows the backend (``library="cuml"`` on a GPU with cuML); a candidate without a
cuML implementation falls back to scikit-learn and says so in ``built.notes``. Libraries are imported
when a candidate is built, never at import of this module.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigError

TASKS = ("binary", "regression")


@dataclass
class BuiltEstimator:
    """An unfitted estimator and how it came to be."""

    estimator: Any
    #: "sklearn", "cuml" or "trident".
    library: str
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EarlyStopping:
    """Early stopping for a fit without an explicit validation set (an inner share of the rows)."""

    rounds: int = 20
    fraction: float = 0.1


@dataclass(frozen=True)
class EstimatorSpec:
    """What the registry knows about one candidate."""

    name: str
    #: Declared interpretable (a KPI constraint can admit only these).
    interpretable: bool
    supports_early_stopping: bool
    #: Default search space: {parameter: [values] | {low, high, log, int}}.
    space: Mapping[str, Any]
    #: Fixed constructor parameters applied before the searched ones.
    fixed: Mapping[str, Any]
    #: ``make(task, library, params, seed, n_jobs, early_stopping) -> BuiltEstimator``.
    make: Callable[..., BuiltEstimator]
    #: ``fit(estimator, X, y, X_val, y_val) -> estimator``; uses the validation set for early stopping.
    fit: Callable[..., Any]
    description: str = ""
    #: Fits CuPy arrays on the GPU itself (Trident's own kernels), whatever the estimator library.
    device_input: bool = False


_REGISTRY: dict[str, EstimatorSpec] = {}


def register(spec: EstimatorSpec) -> EstimatorSpec:
    """Add (or replace) a candidate in the registry."""
    _REGISTRY[spec.name] = spec
    return spec


def available() -> list[str]:
    """Registered candidate names."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> EstimatorSpec:
    """The registry entry of ``name``.

    Raises
    ------
    ConfigError
        ``name`` is not registered (the message lists the registered names).
    """
    try:
        return _REGISTRY[str(name)]
    except KeyError:
        raise ConfigError(f"model.candidates: unknown candidate {name!r}; available: "
                          f"{', '.join(available())}") from None


def build_estimator(name: str, task: str, params: Mapping[str, Any] | None = None, *, seed: int = 0,
                    library: str = "sklearn", n_jobs: int = 1,
                    early_stopping: EarlyStopping | None = None) -> BuiltEstimator:
    """Build the unfitted estimator of candidate ``name`` for ``task``.

    Parameters
    ----------
    name : str
        Registry name (see :func:`available`).
    task : {"binary", "regression"}
    params : mapping, optional
        Constructor parameters (the registry's fixed parameters are applied first).
    seed : int
        Seeds the estimator (``random_state``); nothing is read from global random state.
    library : {"sklearn", "cuml"}
        Preferred library; candidates without a cuML implementation use scikit-learn (noted).
    n_jobs : int
        Threads the estimator may use where it has such a parameter.
    early_stopping : EarlyStopping, optional
        Turn on early stopping on an inner validation share, for models that support it.

    Raises
    ------
    ConfigError
        Unknown candidate, task, or a parameter the estimator does not have.

    Examples
    --------
    >>> build_estimator("logistic", "binary", {"C": 0.5}, seed=1).estimator.C
    0.5
    """
    if task not in TASKS:
        raise ConfigError(f"data.task: expected one of {', '.join(TASKS)}, got {task!r}")
    spec = get_spec(name)
    merged = {**dict(spec.fixed), **dict(params or {})}
    return spec.make(task=task, library=library, params=merged, seed=int(seed), n_jobs=int(n_jobs),
                     early_stopping=early_stopping)


def fit_estimator(name: str, estimator: Any, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Any:
    """Fit ``estimator`` (built for ``name``), early-stopping on ``(X_val, y_val)`` where supported."""
    return get_spec(name).fit(estimator, X, y, X_val, y_val)


def takes_device_arrays(name: str, library: str) -> bool:
    """Whether a built estimator of ``name`` from ``library`` should be handed CuPy arrays on a GPU."""
    return library == "cuml" or get_spec(name).device_input


def n_iterations(estimator: Any) -> int | None:
    """Boosting rounds actually used after early stopping (``None`` for models without rounds)."""
    for attr in ("n_iter_", "n_estimators_"):
        v = getattr(estimator, attr, None)
        if v is not None:
            try:
                return int(v)
            except (TypeError, ValueError):
                continue
    return None


# ---- helpers -------------------------------------------------------------------------------------

def _set(est: Any, name: str, params: Mapping[str, Any]) -> Any:
    """Apply ``params`` with the estimator's own validation turned into a config error."""
    valid = est.get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"model.spaces.{name} / model.params.{name}: {type(est).__name__} has no "
                          f"parameter {', '.join(map(repr, unknown))}; its parameters: {', '.join(sorted(valid))}")
    if params:
        est.set_params(**params)
    return est


def _cuml(module: str) -> Any:
    from engine.backend import compat

    if compat.cuml() is None:
        return None
    try:
        return importlib.import_module(module)
    except Exception:
        return None


def _plain_fit(est: Any, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Any:
    return est.fit(X, y)


def _fallback_note(name: str, why: str) -> str:
    return f"{name}: no cuML implementation used ({why}); fitted with scikit-learn"


# ---- logistic / linear ---------------------------------------------------------------------------

def _make_logistic(task: str, library: str, params: dict, seed: int, n_jobs: int,
                   early_stopping: EarlyStopping | None) -> BuiltEstimator:
    """LogisticRegression (binary) or Ridge (regression, ``alpha = 1 / C``)."""
    notes: list[str] = []
    params = dict(params)
    if task == "regression":
        params.pop("class_weight", None)
        params.pop("max_iter", None)
        if "C" in params:
            params["alpha"] = 1.0 / float(params.pop("C"))
    if library == "cuml":
        lm = _cuml("cuml.linear_model")
        if lm is not None:
            est = lm.LogisticRegression() if task == "binary" else lm.Ridge()
            params.pop("random_state", None)
            return BuiltEstimator(_set(est, "logistic", params), "cuml", notes)
        notes.append(_fallback_note("logistic", "cuml.linear_model does not import"))
    from sklearn.linear_model import LogisticRegression, Ridge

    est = LogisticRegression(random_state=seed) if task == "binary" else Ridge(random_state=seed)
    return BuiltEstimator(_set(est, "logistic", params), "sklearn", notes)


# ---- random forest -------------------------------------------------------------------------------

def _make_random_forest(task: str, library: str, params: dict, seed: int, n_jobs: int,
                        early_stopping: EarlyStopping | None) -> BuiltEstimator:
    notes: list[str] = []
    params = dict(params)
    if library == "cuml":
        ens = _cuml("cuml.ensemble")
        if ens is not None:
            cls = ens.RandomForestClassifier if task == "binary" else ens.RandomForestRegressor
            # one CUDA stream keeps a seeded forest reproducible
            est = cls(random_state=seed, n_streams=1)
            if params.get("max_depth", 0) is None:
                params.pop("max_depth")
                notes.append("random_forest: cuML needs a finite max_depth; its default (16) is used")
            params.pop("n_jobs", None)
            return BuiltEstimator(_set(est, "random_forest", params), "cuml", notes)
        notes.append(_fallback_note("random_forest", "cuml.ensemble does not import"))
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if task == "binary" else RandomForestRegressor
    est = cls(random_state=seed, n_jobs=n_jobs)
    return BuiltEstimator(_set(est, "random_forest", params), "sklearn", notes)


# ---- scikit-learn histogram gradient boosting ----------------------------------------------------

def _make_hist_gbdt(task: str, library: str, params: dict, seed: int, n_jobs: int,
                    early_stopping: EarlyStopping | None) -> BuiltEstimator:
    notes: list[str] = []
    if library == "cuml":
        notes.append(_fallback_note("hist_gbdt", "cuML has no histogram gradient boosting; trident_gbdt "
                                                 "is the GPU boosted-tree candidate"))
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingClassifier if task == "binary" else HistGradientBoostingRegressor
    est = cls(random_state=seed, early_stopping=False)
    est = _set(est, "hist_gbdt", params)
    if early_stopping is not None:
        est.set_params(early_stopping=True, n_iter_no_change=int(early_stopping.rounds),
                       validation_fraction=float(early_stopping.fraction))
    return BuiltEstimator(est, "sklearn", notes)


def _fit_hist_gbdt(est: Any, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Any:
    if X_val is None or not est.get_params().get("early_stopping"):
        return est.fit(X, y)
    return est.fit(X, y, X_val=X_val, y_val=y_val)


# ---- Trident's own gradient-boosted trees --------------------------------------------------------

def _gbdt_module() -> Any:
    try:
        return importlib.import_module("engine.train.gbdt")
    except ImportError as exc:
        raise ConfigError(f"model.candidates: 'trident_gbdt' needs the module engine.train.gbdt, which does "
                          f"not import ({exc}); remove trident_gbdt from model.candidates") from exc


def _make_trident_gbdt(task: str, library: str, params: dict, seed: int, n_jobs: int,
                       early_stopping: EarlyStopping | None) -> BuiltEstimator:
    mod = _gbdt_module()
    cls = mod.TridentGBDTClassifier if task == "binary" else mod.TridentGBDTRegressor
    est = _set(cls(random_state=seed), "trident_gbdt", params)
    if early_stopping is not None:
        est.set_params(early_stopping=True, n_iter_no_change=int(early_stopping.rounds),
                       validation_fraction=float(early_stopping.fraction))
    # the same estimator trains on CuPy arrays on a GPU; its library is Trident's own either way
    return BuiltEstimator(est, "trident", [])


def _fit_trident_gbdt(est: Any, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Any:
    if X_val is None:
        return est.fit(X, y)
    return est.fit(X, y, eval_set=(X_val, y_val))


# ---- the built-in candidates ---------------------------------------------------------------------

register(EstimatorSpec(
    name="logistic",
    interpretable=True,
    supports_early_stopping=False,
    space={"C": {"low": 0.01, "high": 10.0, "log": True}, "class_weight": [None, "balanced"]},
    fixed={"max_iter": 1000},
    make=_make_logistic,
    fit=_plain_fit,
    description="LogisticRegression (binary) / Ridge with alpha = 1/C (regression)",
))
register(EstimatorSpec(
    name="random_forest",
    interpretable=False,
    supports_early_stopping=False,
    space={"n_estimators": [100, 150], "max_depth": [8, 12, 16], "min_samples_leaf": [1, 5, 20],
           "max_features": ["sqrt", 0.3]},
    fixed={},
    make=_make_random_forest,
    fit=_plain_fit,
    description="RandomForestClassifier / RandomForestRegressor",
))
register(EstimatorSpec(
    name="hist_gbdt",
    interpretable=False,
    supports_early_stopping=True,
    space={"learning_rate": {"low": 0.03, "high": 0.2, "log": True}, "max_leaf_nodes": [15, 31, 63],
           "min_samples_leaf": [20, 50, 100], "l2_regularization": {"low": 0.001, "high": 10.0, "log": True}},
    fixed={"max_iter": 300},
    make=_make_hist_gbdt,
    fit=_fit_hist_gbdt,
    description="HistGradientBoostingClassifier / HistGradientBoostingRegressor (scikit-learn)",
))
register(EstimatorSpec(
    name="trident_gbdt",
    interpretable=False,
    supports_early_stopping=True,
    space={"learning_rate": {"low": 0.03, "high": 0.2, "log": True}, "max_depth": [4, 6, 8],
           "min_samples_leaf": [20, 50, 100], "l2_regularization": {"low": 0.001, "high": 10.0, "log": True}},
    fixed={"n_estimators": 300},
    make=_make_trident_gbdt,
    fit=_fit_trident_gbdt,
    description="Trident's gradient-boosted trees (Numba CPU / CUDA kernels)",
    device_input=True,
))
