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


@pytest.mark.parametrize("kw", [
    {"max_depth": 6},
    {"max_depth": 10, "min_samples_leaf": 5, "subsample": 0.7, "colsample": 0.6, "l2_regularization": 1.0},
])
def test_device_resident_growth_grows_the_host_driven_trees(data, kw, monkeypatch):
    """The level kernels (the default on CuPy) against the host-driven grower with the CUDA twins: the
    same first tree up to ties, and the same quality.

    Histograms are sums of float atomics, whose order differs from launch to launch. At a small node two
    candidate splits can part its rows the same way (two features, or two bins with no row between them):
    their gains are equal in exact arithmetic, and rounding decides which one is taken. On an H200 such
    ties flipped at 2 of 113 nodes (depth 6) and 1 of 521 (depth 10). So the tree's shape and every node's
    rows (count) and leaf values must agree, and a split may differ only where its gain ties."""
    import cupy

    from engine.train.gbdt import TridentGBDTClassifier
    from engine.train.gbdt_device import LEVELS_ENV

    Xtr, ytr, Xte, yte = data
    fits = {}
    for levels in ("1", "0"):
        monkeypatch.setenv(LEVELS_ENV, levels)
        fits[levels] = TridentGBDTClassifier(n_estimators=20, random_state=0, **kw).fit(cupy.asarray(Xtr), cupy.asarray(ytr))
    dev, host = fits["1"], fits["0"]
    n0 = int(dev.trees_["offsets"][1])
    assert n0 == int(host.trees_["offsets"][1]) > 1
    # the same shape, the same rows in every node (a split that parted its rows otherwise would change the
    # counts below it), and the same leaf values from those rows
    for k in ("left", "right", "count"):
        np.testing.assert_array_equal(dev.trees_[k][:n0], host.trees_[k][:n0], err_msg=k)
    np.testing.assert_allclose(dev.trees_["value"][:n0], host.trees_["value"][:n0], rtol=1e-4, atol=1e-7)
    inner = np.asarray(host.trees_["feature"][:n0]) >= 0
    differ = np.zeros(n0, dtype=bool)
    for k in ("feature", "split_bin", "missing_left"):
        differ |= np.asarray(dev.trees_[k][:n0]) != np.asarray(host.trees_[k][:n0])
    assert not (differ & ~inner).any()  # a leaf in one is a leaf in the other
    assert differ.sum() <= max(2, 0.02 * inner.sum()), np.flatnonzero(differ)  # ties are rare
    gain_d, gain_h = np.asarray(dev.trees_["gain"][:n0]), np.asarray(host.trees_["gain"][:n0])
    np.testing.assert_allclose(gain_d[differ], gain_h[differ], rtol=1e-3, atol=1e-6 * gain_h.max(),
                               err_msg="a split that differs must be a tie")
    auc = [roc_auc_score(yte, m.predict_proba(Xte)[:, 1]) for m in (dev, host)]
    assert abs(auc[0] - auc[1]) <= 0.002, auc
