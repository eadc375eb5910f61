"""ONNX export of Trident's GBDT: onnxruntime agrees with the in-process predictor on held-out rows
(missing values, all-values-left splits, best-first trees, string labels included)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import make_classification

from engine.errors import GateFailed
from engine.train.gbdt import TridentGBDTClassifier, TridentGBDTRegressor
from engine.train.gbdt_onnx import to_onnx, verify_onnx


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=6000, n_features=8, n_informative=5, random_state=0)
    X = X.astype(np.float32)
    rng = np.random.default_rng(0)
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, 3] = np.round(X[:, 3])  # few distinct values: thresholds sit between neighbours
    X[:, 7] = np.where(rng.random(6000) < 0.5, np.nan, 1.0)  # only "missing or not": all-values-left splits
    return X[:4000], y[:4000], X[4000:], y[4000:]


def _run(model_proto, X):
    sess = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return names, sess.run(None, {"input": X})


def test_classifier_outputs_labels_and_probabilities_like_skl2onnx(data):
    Xtr, ytr, Xte, _ = data
    m = TridentGBDTClassifier(n_estimators=60, max_depth=5, random_state=0).fit(Xtr, ytr)
    names, (label, proba) = _run(to_onnx(m, 8), Xte)
    assert names == ["label", "probabilities"]
    assert proba.shape == (2000, 2) and proba.dtype == np.float32 and label.dtype == np.int64
    np.testing.assert_allclose(proba, m.predict_proba(Xte), atol=1e-5)
    assert verify_onnx(m, to_onnx(m, 8), Xte, tol=1e-5) <= 1e-5


def test_all_values_left_splits_use_an_infinite_threshold(data):
    Xtr, ytr, Xte, _ = data
    m = TridentGBDTClassifier(n_estimators=60, max_depth=5, random_state=0).fit(Xtr, ytr)
    t = m.trees_
    inner = t["feature"] >= 0
    assert np.isposinf(t["threshold"][inner]).any()
    assert verify_onnx(m, to_onnx(m), Xte, tol=1e-5) <= 1e-5


def test_best_first_trees_with_string_labels_export(data):
    Xtr, ytr, Xte, _ = data
    labels = np.where(ytr == 1, "bad", "good")
    m = TridentGBDTClassifier(n_estimators=40, max_leaves=12, max_depth=None, random_state=0).fit(Xtr, labels)
    _, (label, proba) = _run(to_onnx(m, 8), Xte)
    assert set(label.tolist()) <= {"bad", "good"}
    assert verify_onnx(m, to_onnx(m, 8), Xte, tol=1e-5) <= 1e-5


def test_regressor_outputs_variable(data):
    Xtr, _, Xte, _ = data
    rng = np.random.default_rng(1)
    y = np.nan_to_num(Xtr[:, 0]) * 3 + np.isnan(Xtr[:, 1]) + rng.normal(size=len(Xtr))
    m = TridentGBDTRegressor(n_estimators=80, max_depth=5, random_state=0).fit(Xtr, y)
    names, (var,) = _run(to_onnx(m, 8), Xte)
    assert names == ["variable"] and var.shape == (2000, 1)
    np.testing.assert_allclose(var[:, 0], m.predict(Xte), atol=1e-4 * max(1.0, np.abs(m.predict(Xte)).max()))
    verify_onnx(m, to_onnx(m, 8), Xte, tol=1e-4)


def test_verify_onnx_names_the_largest_difference(data):
    Xtr, ytr, Xte, _ = data
    a = TridentGBDTClassifier(n_estimators=20, max_depth=3, random_state=0).fit(Xtr, ytr)
    b = TridentGBDTClassifier(n_estimators=20, max_depth=4, random_state=0).fit(Xtr, ytr)
    with pytest.raises(GateFailed, match="largest difference .* at row"):
        verify_onnx(a, to_onnx(b, 8), Xte, tol=1e-5)


def test_to_onnx_rejects_a_wrong_input_width(data):
    Xtr, ytr, _, _ = data
    m = TridentGBDTClassifier(n_estimators=2, max_depth=2).fit(Xtr, ytr)
    with pytest.raises(ValueError, match="n_features"):
        to_onnx(m, 9)
