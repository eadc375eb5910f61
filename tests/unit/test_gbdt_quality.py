"""Quality: Trident's GBDT against scikit-learn's HistGradientBoostingClassifier at equal settings.

Tolerance: the ROC AUC of Trident's model must be within 0.005 of scikit-learn's (same depth, learning
rate, iterations, bins, L2 and minimum leaf size; early stopping off), on held-out data.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from engine.train.gbdt import TridentGBDTClassifier

AUC_TOLERANCE = 0.005


def _pair(depth: int, lr: float, iters: int, l2: float, min_leaf: int, bins: int = 255):
    ours = TridentGBDTClassifier(n_estimators=iters, max_depth=depth, learning_rate=lr, l2_regularization=l2,
                                 min_samples_leaf=min_leaf, max_bins=bins, random_state=0)
    theirs = HistGradientBoostingClassifier(max_iter=iters, max_depth=depth, max_leaf_nodes=None, learning_rate=lr,
                                            l2_regularization=l2, min_samples_leaf=min_leaf, max_bins=bins,
                                            early_stopping=False, random_state=0)
    return ours, theirs


def test_auc_matches_sklearn_on_20k_synthetic_rows_with_missing_values():
    X, y = make_classification(n_samples=30_000, n_features=20, n_informative=10, random_state=0)
    X = X.astype(np.float32)
    X[np.random.default_rng(0).random(X.shape) < 0.02] = np.nan
    Xtr, ytr, Xte, yte = X[:20_000], y[:20_000], X[20_000:], y[20_000:]
    ours, theirs = _pair(depth=6, lr=0.1, iters=100, l2=0.0, min_leaf=20)
    auc_ours = roc_auc_score(yte, ours.fit(Xtr, ytr).predict_proba(Xte)[:, 1])
    auc_theirs = roc_auc_score(yte, theirs.fit(Xtr, ytr).predict_proba(Xte)[:, 1])
    assert auc_ours > 0.95
    assert abs(auc_ours - auc_theirs) <= AUC_TOLERANCE, (auc_ours, auc_theirs)


@pytest.fixture(scope="module")
def credit(credit_csv):
    df = pd.read_csv(credit_csv)
    y = (df.pop("Status") == "bad").astype(int).to_numpy()
    for c in df.columns:  # ordinal-encode the categorical columns, keeping missing values missing
        if not pd.api.types.is_numeric_dtype(df[c]):
            codes = df[c].astype("category").cat.codes.astype(float)
            df[c] = codes.where(df[c].notna())
    return df.to_numpy(np.float32), y


def test_auc_matches_sklearn_on_credit_data_in_5_fold_cross_validation(credit):
    X, y = credit
    assert np.isnan(X).any()
    ours_auc, theirs_auc = [], []
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        ours, theirs = _pair(depth=3, lr=0.1, iters=100, l2=1.0, min_leaf=20)
        ours_auc.append(roc_auc_score(y[test], ours.fit(X[train], y[train]).predict_proba(X[test])[:, 1]))
        theirs_auc.append(roc_auc_score(y[test], theirs.fit(X[train], y[train]).predict_proba(X[test])[:, 1]))
    assert np.mean(ours_auc) > 0.8
    assert abs(np.mean(ours_auc) - np.mean(theirs_auc)) <= AUC_TOLERANCE, (ours_auc, theirs_auc)
