"""Trident's GBDT on CuPy arrays (a real GPU): training and prediction stay on the device and agree
with the CPU path."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score

from engine.backend import gpu_available

_GPU, _WHY = gpu_available()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _GPU, reason=f"needs a CUDA GPU: {_WHY}")]


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=30_000, n_features=12, n_informative=6, random_state=0)
    X = X.astype(np.float32)
    X[np.random.default_rng(0).random(X.shape) < 0.03] = np.nan
    return X[:20_000], y[:20_000], X[20_000:], y[20_000:]


def test_fit_and_predict_on_cupy_match_the_cpu_model(data):
    import cupy

    from engine.train.gbdt import TridentGBDTClassifier

    Xtr, ytr, Xte, yte = data
    kw = dict(n_estimators=60, max_depth=6, random_state=0)
    cpu = TridentGBDTClassifier(**kw).fit(Xtr, ytr)
    gpu = TridentGBDTClassifier(**kw).fit(cupy.asarray(Xtr), cupy.asarray(ytr))
    proba = gpu.predict_proba(cupy.asarray(Xte))
    assert isinstance(proba, cupy.ndarray)
    auc_gpu = roc_auc_score(yte, cupy.asnumpy(proba)[:, 1])
    auc_cpu = roc_auc_score(yte, cpu.predict_proba(Xte)[:, 1])
    assert abs(auc_gpu - auc_cpu) <= 0.002
    np.testing.assert_allclose(gpu.predict_proba(Xte), cupy.asnumpy(proba), atol=1e-9)


def test_best_first_regressor_with_sampling_and_early_stopping_on_cupy(data):
    import cupy

    from engine.train.gbdt import TridentGBDTRegressor

    Xtr, _, Xte, _ = data
    y = np.nan_to_num(Xtr[:, 0]) * 2 + np.isnan(Xtr[:, 1])
    m = TridentGBDTRegressor(n_estimators=300, max_leaves=15, max_depth=None, subsample=0.8, colsample=0.7,
                             early_stopping=True, random_state=0).fit(cupy.asarray(Xtr), cupy.asarray(y))
    assert m.n_estimators_ <= 300
    pred = m.predict(cupy.asarray(Xte))
    np.testing.assert_allclose(cupy.asnumpy(pred), m.predict(Xte), atol=1e-9)
