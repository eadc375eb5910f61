"""Config schemas of model development: candidates and their spaces (conf/model), search (conf/search).

A search space maps a constructor parameter to either a list of values (``[0.1, 1.0]``, ``null`` for
None) or a range ``{low: 0.001, high: 100.0, log: true, int: false}``. A space given in
``model.spaces.<candidate>`` replaces the registry's default space of that candidate;
``model.params.<candidate>`` fixes parameters that are not searched. To turn a range into a list from
the command line, delete it first: ``~model.spaces.logistic.C +model.spaces.logistic.C=[1.0]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class SearchMethod(Enum):
    random = "random"
    grid = "grid"


@dataclass
class SplitConfig:
    """Train / validation / test fractions (``model.split``).

    Stratified by the target for a binary task; ordered by ``data.date_column`` when one is declared
    (oldest rows train, newest rows test) unless ``by_time`` is false.
    """

    train: float = 0.7
    valid: float = 0.15
    test: float = 0.15
    stratify: bool = True
    #: Split by ``data.date_column`` when it is declared.
    by_time: bool = True


@dataclass
class ModelConfig:
    """Candidate models (conf/model)."""

    enabled: bool = True
    #: Registry names, tried in this order (see ``engine.train.registry.available()``).
    candidates: list[str] = field(default_factory=lambda: ["logistic", "random_forest", "hist_gbdt",
                                                           "trident_gbdt"])
    #: candidate -> {parameter: list of values | {low, high, log, int}}; overrides the registry default.
    spaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: candidate -> {parameter: value}: fixed constructor parameters (not searched).
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: MLflow registered model name.
    registered_name: str = "credit_default"
    split: SplitConfig = field(default_factory=SplitConfig)


@dataclass
class SearchConfig:
    """Hyper-parameter search (conf/search)."""

    #: false: each candidate is cross-validated and fitted with its default parameters only.
    enabled: bool = True
    method: SearchMethod = SearchMethod.random
    #: Trials per candidate (random search). Grid search runs every combination up to ``max_grid``.
    n_trials: int = 6
    #: Values taken from a range ``{low, high}`` in a grid search.
    grid_points: int = 3
    #: A grid larger than this is a config error (use random search).
    max_grid: int = 200
    #: k of the k-fold cross-validation on the training split (stratified for a binary task).
    folds: int = 3
    #: "auto": roc_auc for binary, neg_rmse for regression; else roc_auc | neg_log_loss | neg_rmse | r2.
    scoring: str = "auto"
    #: Early stopping for models that support it: an inner validation share while cross-validating,
    #: the validation split when refitting.
    early_stopping: bool = True
    #: Boosting rounds without improvement before stopping.
    early_stopping_rounds: int = 20
    #: Share of the training fold held out for early stopping inside cross-validation.
    early_stopping_fraction: float = 0.1
    #: Cross-validate on at most this many training rows (stratified sample; 0 = all). The refit uses all.
    max_rows: int = 0
    #: Threads one fit uses (OpenMP, BLAS, Numba, ``n_jobs``). Fits run side by side: in-process on
    #: cores // n_jobs threads, on Dask on the workers' threads. Equal values give identical results.
    n_jobs: int = 1
