"""ONNX conversion is verified against the original estimator before anything is written."""
import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge

from engine.errors import GateFailed
from engine.export import onnx as ox


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One OpenMP thread: histogram boosting on tiny data only loses time to thread start-up on a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def clf_data():
    X, y = make_classification(n_samples=1200, n_features=8, n_informative=5, random_state=0)
    X = X.astype(np.float32)
    return X[:900], y[:900], X[900:]


@pytest.fixture(scope="module")
def reg_data():
    X, y = make_regression(n_samples=800, n_features=6, noise=5.0, random_state=0)
    X = X.astype(np.float32)
    return X[:600], y[:600], X[600:]


CLASSIFIERS = {
    "logistic": lambda: LogisticRegression(max_iter=500),
    "random_forest": lambda: RandomForestClassifier(n_estimators=25, max_depth=6, random_state=0),
    "hist_gbdt": lambda: HistGradientBoostingClassifier(max_iter=40, random_state=0),
}


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_classifier_converts_within_tolerance(clf_data, name):
    X, y, X_hold = clf_data
    est = CLASSIFIERS[name]().fit(X, y)
    model, parity = ox.export(est, X_hold, "binary")
    assert parity["rows"] == len(X_hold) and parity["max_abs_diff"] <= 1e-4 == parity["tolerance"]
    assert model.input == "input" and model.probability_output == "probabilities"
    sess = ox.session(model.data)
    got = ox.onnx_scores(sess, X_hold, "binary", ox.describe_outputs(sess, "binary"))
    np.testing.assert_allclose(got, est.predict_proba(X_hold)[:, 1], atol=1e-4)


@pytest.mark.parametrize("est", [HistGradientBoostingRegressor(max_iter=30, random_state=0), Ridge()],
                         ids=["hist_gbdt", "ridge"])
def test_regressor_converts_within_tolerance(reg_data, est):
    X, y, X_hold = reg_data
    model, parity = ox.export(est.fit(X, y), X_hold, "regression")
    assert model.score_output and model.probability_output is None
    assert parity["max_abs_diff"] <= 1e-4


def test_conversion_is_byte_deterministic(clf_data):
    X, y, _ = clf_data
    est = LogisticRegression(max_iter=500).fit(X, y)
    assert ox.convert(est, X.shape[1], "binary", name="m") == ox.convert(est, X.shape[1], "binary", name="m")


def _corrupt_coefficients(data: bytes) -> bytes:
    import onnx

    m = onnx.load_from_string(data)
    for node in m.graph.node:
        for attr in node.attribute:
            if attr.name == "coefficients":
                attr.floats[:] = [v + 0.5 for v in attr.floats]
    return m.SerializeToString()


def test_corrupted_model_fails_the_parity_gate_naming_row_and_difference(clf_data):
    X, y, X_hold = clf_data
    est = LogisticRegression(max_iter=500).fit(X, y)
    bad = _corrupt_coefficients(ox.convert(est, X.shape[1], "binary"))
    with pytest.raises(GateFailed) as err:
        ox.verify(bad, est, X_hold, "binary", tolerance=1e-4)
    msg = str(err.value)
    assert "held-out row" in msg and "tolerance 0.0001" in msg and "largest difference" in msg


def test_tolerance_is_configurable(clf_data):
    X, y, X_hold = clf_data
    est = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    data = ox.convert(est, X.shape[1], "binary")
    rec = ox.verify(data, est, X_hold, "binary", tolerance=0.5)
    assert rec["tolerance"] == 0.5
    with pytest.raises(GateFailed):
        ox.verify(data, est, X_hold, "binary", tolerance=-1.0)


def test_categorical_hist_gbdt_is_refused():
    from engine.errors import TridentError

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 4, 300), rng.normal(size=300)]).astype(np.float32)
    y = (X[:, 0] > 1).astype(int)
    est = HistGradientBoostingClassifier(max_iter=5, categorical_features=[0]).fit(X, y)
    with pytest.raises(TridentError, match="categorical_features"):
        ox.convert(est, 2, "binary")


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_trident_gbdt_converts_within_tolerance(clf_data, reg_data, task):
    pytest.importorskip("engine.train.gbdt_onnx", reason="engine.train.gbdt_onnx (Trident GBDT -> ONNX) not present")
    from engine.train.gbdt import TridentGBDTClassifier, TridentGBDTRegressor

    X, y, X_hold = clf_data if task == "binary" else reg_data
    cls = TridentGBDTClassifier if task == "binary" else TridentGBDTRegressor
    est = cls(n_estimators=20, max_depth=4, random_state=0).fit(X, y)
    model, parity = ox.export(est, X_hold, task)
    assert parity["max_abs_diff"] <= 1e-4
    assert (model.probability_output if task == "binary" else model.score_output)
