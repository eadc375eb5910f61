"""scikit-learn's estimator checks on Trident's GBDT (small models so that the whole suite stays quick)."""
from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from engine.train.gbdt import TridentGBDTClassifier, TridentGBDTRegressor


@parametrize_with_checks([
    TridentGBDTClassifier(n_estimators=5, max_depth=3, min_samples_leaf=1),
    TridentGBDTRegressor(n_estimators=5, max_depth=3, min_samples_leaf=1),
])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
