"""A trained candidate model: what the train stage hands to evaluation and selection."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Candidate:
    """One candidate after search: the estimator refit with its best parameters on the training split."""

    #: Registry name, e.g. "logistic", "random_forest", "hist_gbdt", "trident_gbdt".
    name: str
    #: Fitted estimator (scikit-learn API: predict_proba / predict).
    estimator: Any
    #: Best hyper-parameters found by the search.
    params: dict[str, Any] = field(default_factory=dict)
    #: Cross-validated score of the best parameters: {"metric": ..., "mean": ..., "std": ...}.
    cv: dict[str, Any] = field(default_factory=dict)
    #: Every search trial: [{"params": {...}, "mean": ..., "std": ..., "fold_scores": [...]}].
    trials: list[dict[str, Any]] = field(default_factory=list)
    fit_seconds: float = 0.0
    #: Declared interpretable (linear models, shallow trees): KPI constraint ``interpretable: true``.
    interpretable: bool = False
    #: Library that fitted it ("sklearn", "cuml", "trident").
    library: str = "sklearn"
    notes: list[str] = field(default_factory=list)
    #: Seed the refit estimator was built with (the best trial's seed).
    seed: int = 0
    #: How the search ran: method, trials, folds, seconds, early stopping of the refit, validation score.
    search: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """Everything but the estimator, as JSON-able data (what candidates.json holds)."""
        return {"name": self.name, "params": dict(self.params), "cv": dict(self.cv), "trials": list(self.trials),
                "fit_seconds": float(self.fit_seconds), "interpretable": bool(self.interpretable),
                "library": self.library, "notes": list(self.notes), "seed": int(self.seed),
                "search": dict(self.search), "estimator_class": type(self.estimator).__name__}
