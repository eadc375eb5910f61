"""TridentGBDTClassifier / TridentGBDTRegressor: the scikit-learn contract, the parameters' effects,
missing values, early stopping, importances and plain-data serialisation."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from engine.errors import ConfigError, DataError
from engine.train.gbdt import TridentGBDTClassifier, TridentGBDTRegressor


@pytest.fixture(scope="module")
def clf_data():
    X, y = make_classification(n_samples=3000, n_features=8, n_informative=4, random_state=1)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def fitted(clf_data):
    X, y = clf_data
    return TridentGBDTClassifier(n_estimators=30, max_depth=4, random_state=0).fit(X, y)


def _leaf_counts(model):
    t = model.trees_
    return t["count"][t["feature"] < 0]


def _depths(model):
    t, out = model.trees_, []
    for k, off in enumerate(t["offsets"]):
        end = t["offsets"][k + 1] if k + 1 < len(t["offsets"]) else len(t["feature"])
        depth = {0: 0}
        for i in range(end - off):
            if t["feature"][off + i] >= 0:
                depth[t["left"][off + i]] = depth[t["right"][off + i]] = depth[i] + 1
        out.append(max(depth.values()))
    return out


# ------------------------------------------------------------------------------------ contract
def test_init_only_stores_parameters_and_clone_round_trips():
    est = TridentGBDTClassifier(n_estimators=7, max_leaves=9, colsample=0.5, random_state=3)
    assert est.get_params()["max_leaves"] == 9
    assert not [k for k in vars(est) if k.endswith("_")]
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert twin.set_params(learning_rate=0.2).learning_rate == 0.2


def test_predicting_before_fit_raises_not_fitted(clf_data):
    with pytest.raises(NotFittedError):
        TridentGBDTClassifier().predict_proba(clf_data[0])


def test_fit_returns_self_and_sets_fitted_attributes(fitted, clf_data):
    assert fitted.n_features_in_ == 8 and fitted.n_estimators_ == 30
    assert fitted.classes_.tolist() == [0, 1]
    assert fitted.best_iteration_ is None
    proba = fitted.predict_proba(clf_data[0])
    assert proba.shape == (3000, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-fitted.decision_function(clf_data[0]))))
    assert np.array_equal(fitted.predict(clf_data[0]), (proba[:, 1] > 0.5).astype(int))


def test_string_labels_come_back_as_labels(clf_data):
    X, y = clf_data
    labels = np.where(y == 1, "bad", "good")
    m = TridentGBDTClassifier(n_estimators=10, max_depth=3).fit(X, labels)
    assert m.classes_.tolist() == ["bad", "good"]
    assert set(m.predict(X)) <= {"bad", "good"}
    assert roc_auc_score(labels == "good", m.predict_proba(X)[:, 1]) > 0.9


def test_the_classifier_is_binary_only(clf_data):
    with pytest.raises(DataError, match="exactly 2 classes"):
        TridentGBDTClassifier().fit(clf_data[0], np.arange(3000) % 3)


@pytest.mark.parametrize(
    "param, value",
    [("n_estimators", 0), ("learning_rate", 0.0), ("max_bins", 256), ("subsample", 1.5), ("colsample", 0.0),
     ("min_samples_leaf", 0), ("max_leaves", 1)],
)
def test_invalid_parameters_name_themselves(clf_data, param, value):
    with pytest.raises(ConfigError, match=param):
        TridentGBDTClassifier(**{"n_estimators": 2, param: value}).fit(clf_data[0][:100], clf_data[1][:100])


def test_wrong_number_of_features_at_predict_is_a_data_error(fitted, clf_data):
    with pytest.raises(DataError, match="features"):
        fitted.predict(clf_data[0][:, :5])


def test_pandas_input_records_feature_names(clf_data):
    import pandas as pd

    X, y = clf_data
    df = pd.DataFrame(X, columns=[f"c{i}" for i in range(8)])
    m = TridentGBDTClassifier(n_estimators=3, max_depth=2).fit(df, y)
    assert m.feature_names_in_.tolist() == [f"c{i}" for i in range(8)]
    assert m.predict_proba(df).shape == (3000, 2)
    assert not hasattr(TridentGBDTClassifier(n_estimators=3, max_depth=2).fit(X, y), "feature_names_in_")


# ---------------------------------------------------------------------------------- parameters
def test_same_seed_same_model_with_row_and_feature_sampling(clf_data):
    X, y = clf_data
    kw = dict(n_estimators=15, max_depth=4, subsample=0.7, colsample=0.6)
    a = TridentGBDTClassifier(random_state=5, **kw).fit(X, y)
    b = TridentGBDTClassifier(random_state=5, **kw).fit(X, y)
    c = TridentGBDTClassifier(random_state=6, **kw).fit(X, y)
    for k in a.trees_:
        np.testing.assert_array_equal(a.trees_[k], b.trees_[k])
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))
    assert roc_auc_score(y, a.predict_proba(X)[:, 1]) > 0.9


def test_colsample_restricts_each_tree_to_its_drawn_features(clf_data):
    m = TridentGBDTClassifier(n_estimators=12, max_depth=3, colsample=0.25, random_state=0).fit(*clf_data)
    t = m.trees_
    ends = np.append(t["offsets"][1:], len(t["feature"]))
    used = [set(t["feature"][a:b][t["feature"][a:b] >= 0].tolist()) for a, b in zip(t["offsets"], ends)]
    assert all(len(u) <= 2 for u in used)
    assert len(set().union(*used)) > 2


def test_max_depth_bounds_every_tree(fitted):
    assert max(_depths(fitted)) == 4


def test_max_leaves_grows_best_first_up_to_the_limit(clf_data):
    X, y = clf_data
    m = TridentGBDTClassifier(n_estimators=10, max_leaves=7, max_depth=None, min_samples_leaf=5).fit(X, y)
    t = m.trees_
    sizes = np.diff(np.append(t["offsets"], len(t["feature"])))
    assert np.all(sizes == 13)  # 7 leaves, 6 splits per tree
    assert max(_depths(m)) > 3  # best-first goes deeper than a balanced tree of 7 leaves would


def test_min_samples_leaf_is_respected(clf_data):
    m = TridentGBDTClassifier(n_estimators=10, max_depth=6, min_samples_leaf=60).fit(*clf_data)
    assert _leaf_counts(m).min() >= 60


def test_min_child_weight_is_respected(clf_data):
    m = TridentGBDTClassifier(n_estimators=10, max_depth=6, min_samples_leaf=1, min_child_weight=15.0).fit(*clf_data)
    t = m.trees_
    assert t["hessian"][t["feature"] < 0].min() >= 15.0 - 1e-6


def test_l2_regularization_shrinks_leaf_values(clf_data):
    X, y = clf_data
    free = TridentGBDTClassifier(n_estimators=1, max_depth=3).fit(X, y)
    shrunk = TridentGBDTClassifier(n_estimators=1, max_depth=3, l2_regularization=500.0).fit(X, y)
    assert np.abs(shrunk.trees_["value"]).max() < 0.5 * np.abs(free.trees_["value"]).max()


def test_regressor_fits_a_smooth_function():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(4000, 3))
    y = np.sin(X[:, 0]) * 2 + X[:, 1] + rng.normal(scale=0.1, size=4000)
    m = TridentGBDTRegressor(n_estimators=200, max_depth=4, learning_rate=0.1).fit(X[:3000], y[:3000])
    assert m.score(X[3000:], y[3000:]) > 0.97
    assert m.base_score_ == pytest.approx(y[:3000].mean())


# ------------------------------------------------------------------------------ missing values
def test_missing_values_follow_the_learned_direction():
    rng = np.random.default_rng(2)
    x = rng.normal(size=4000)
    y = (x > 0.5).astype(int)
    x[rng.random(4000) < 0.2] = np.nan
    y[np.isnan(x)] = 1  # missing means positive
    X = np.column_stack([x, rng.normal(size=4000)])
    m = TridentGBDTClassifier(n_estimators=20, max_depth=2).fit(X, y)
    p = m.predict_proba(np.array([[np.nan, 0.0], [-1.0, 0.0], [2.0, 0.0]]))[:, 1]
    assert p[0] > 0.9 and p[1] < 0.1 and p[2] > 0.9


def test_nan_unseen_in_training_goes_to_the_larger_child():
    rng = np.random.default_rng(3)
    x = rng.normal(size=2000)
    y = (x > 1.0).astype(int)  # the left (x <= ~1) child is the larger one
    m = TridentGBDTClassifier(n_estimators=10, max_depth=1).fit(x[:, None], y)
    assert m.predict_proba(np.array([[np.nan]]))[0, 1] == pytest.approx(m.predict_proba(np.array([[-1.0]]))[0, 1])


# ------------------------------------------------------------------------------ early stopping
def test_early_stopping_on_a_validation_fraction_keeps_the_best_trees():
    X, y = make_classification(n_samples=2000, n_features=10, flip_y=0.3, random_state=4)
    m = TridentGBDTClassifier(n_estimators=500, learning_rate=0.3, max_depth=6, early_stopping=True,
                              n_iter_no_change=5, random_state=0).fit(X, y)
    assert m.n_estimators_ < 500
    assert m.n_estimators_ == m.best_iteration_ + 1
    assert len(m.validation_scores_) == m.best_iteration_ + 1 + 5
    assert np.argmin(m.validation_scores_) == m.best_iteration_


def test_eval_set_turns_early_stopping_on(clf_data):
    X, y = clf_data
    m = TridentGBDTClassifier(n_estimators=400, learning_rate=0.5, max_depth=6, n_iter_no_change=3).fit(
        X[:2000], y[:2000], eval_set=(X[2000:], y[2000:]))
    assert m.best_iteration_ is not None and m.n_estimators_ < 400


def test_eval_set_with_an_unknown_label_is_a_data_error(clf_data):
    X, y = clf_data
    with pytest.raises(DataError, match="y_val"):
        TridentGBDTClassifier(n_estimators=2).fit(X, y, eval_set=(X[:10], np.full(10, 7)))


# ---------------------------------------------------------------------------------- importances
def test_importances_rank_the_informative_feature_first():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 4))
    y = (X[:, 2] + 0.1 * rng.normal(size=3000) > 0).astype(int)
    m = TridentGBDTClassifier(n_estimators=20, max_depth=3).fit(X, y)
    assert m.feature_importances_.sum() == pytest.approx(1.0)
    assert int(np.argmax(m.feature_importances_)) == 2
    splits = m.feature_importance("split")
    assert splits.sum() == (m.trees_["feature"] >= 0).sum()
    assert np.all(splits == np.round(splits))
    gain = m.feature_importance("gain")
    np.testing.assert_allclose(gain / gain.sum(), m.feature_importances_)
    with pytest.raises(ValueError, match="kind"):
        m.feature_importance("cover")


# -------------------------------------------------------------------------------- serialisation
def test_to_dict_is_plain_data_and_from_dict_predicts_the_same(fitted, clf_data):
    d = fitted.to_dict()
    arrays = {k: v for k, v in d.items() if isinstance(v, (np.ndarray, dict))}
    json.dumps({k: v for k, v in d.items() if k not in arrays})
    assert all(isinstance(v, np.ndarray) for v in d["trees"].values())
    clone_ = TridentGBDTClassifier.from_dict(d)
    assert clone_.get_params() == fitted.get_params()
    np.testing.assert_array_equal(clone_.predict_proba(clf_data[0]), fitted.predict_proba(clf_data[0]))
    np.testing.assert_array_equal(clone_.feature_importances_, fitted.feature_importances_)


def test_from_dict_survives_a_json_and_npz_round_trip(fitted, clf_data, tmp_path):
    d = fitted.to_dict()
    trees, edges, nb = d.pop("trees"), d.pop("bin_edges"), d.pop("n_bins")
    (tmp_path / "m.json").write_text(json.dumps(d))
    np.savez(tmp_path / "m.npz", bin_edges=edges, n_bins=nb, **{f"trees.{k}": v for k, v in trees.items()})
    back = json.loads((tmp_path / "m.json").read_text())
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        back["bin_edges"], back["n_bins"] = z["bin_edges"], z["n_bins"]
        back["trees"] = {k.split(".", 1)[1]: z[k] for k in z.files if k.startswith("trees.")}
    m = TridentGBDTClassifier.from_dict(back)
    np.testing.assert_array_equal(m.predict_proba(clf_data[0]), fitted.predict_proba(clf_data[0]))


def test_from_dict_rejects_other_models_and_broken_trees(fitted):
    d = fitted.to_dict()
    with pytest.raises(DataError, match="classifier"):
        TridentGBDTRegressor.from_dict(d)
    with pytest.raises(DataError, match="format"):
        TridentGBDTClassifier.from_dict({"format": "pickle"})
    bad = fitted.to_dict()
    bad["trees"]["left"] = bad["trees"]["left"] + 1000
    with pytest.raises(DataError, match="left"):
        TridentGBDTClassifier.from_dict(bad)
    missing = fitted.to_dict()
    del missing["base_score"]
    with pytest.raises(DataError, match="base_score"):
        TridentGBDTClassifier.from_dict(missing)


# ------------------------------------------------------------------------------------- grower
def test_the_grower_builds_the_same_tree_with_reference_kernels(clf_data):
    from engine.train.gbdt_grow import GrowParams, TreeGrower
    from kernels.gbdt_binning import apply_bins, bin_edges
    from kernels.gbdt_loss import gradients_reference

    X, y = clf_data
    X = X[:800].copy()
    X[::7, 1] = np.nan
    edges, nb = bin_edges(X, 32)
    bins = apply_bins(X, edges, nb)
    gh = gradients_reference("log_loss", np.zeros(800), y[:800].astype(np.float32))
    trees = []
    for impl in ("cpu", "reference"):
        for params in (GrowParams(max_depth=3, min_samples_leaf=10), GrowParams(max_depth=None, max_leaves=6, min_samples_leaf=10)):
            grower = TreeGrower(bins, nb, params, impl=impl)
            tree = grower.grow(gh, np.arange(800, dtype=np.int32), np.arange(8))
            raw = grower.add_leaf_values(tree, np.zeros(800))
            trees.append((tree, raw))
    for (a, ra), (b, rb) in zip(trees[:2], trees[2:]):
        for field in ("feature", "split_bin", "missing_left", "left", "right", "count"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        np.testing.assert_allclose(a.value, b.value, rtol=1e-9)
        np.testing.assert_allclose(ra, rb, rtol=1e-9)
        assert np.count_nonzero(ra) == 800


def _standin_cupy(monkeypatch):
    """The CuPy stand-in (NumPy underneath, its array type in module ``cupy``) as ``cupy``."""
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "cupy", Path(__file__).resolve().parents[1] / "cupy_standin" / "cupy" / "__init__.py")
    standin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standin)
    monkeypatch.setitem(sys.modules, "cupy", standin)
    import engine.backend.compat as compat

    monkeypatch.setattr(compat, "cupy", lambda: standin)  # (an earlier test may have cached "no CuPy")
    return standin


def test_device_labels_are_encoded_on_the_device_and_only_the_classes_come_back(monkeypatch):
    import engine.backend as backend

    cp = _standin_cupy(monkeypatch)
    copied = []
    real = backend.to_numpy
    monkeypatch.setattr(backend, "to_numpy", lambda a: copied.append(int(np.size(a))) or real(a))
    rng = np.random.default_rng(3)
    labels = rng.choice(np.array([3, 7]), size=1000)
    for y in (cp.asarray(labels), cp.asarray(labels.astype(np.float64)), cp.asarray(labels == 7)):
        copied.clear()
        m = TridentGBDTClassifier()
        enc = m._encode_target(y, 1000)
        assert type(enc).__module__.startswith("cupy") and enc.dtype == np.float32  # stays on the device
        np.testing.assert_array_equal(np.asarray(enc), (np.asarray(y) == np.asarray(y).max()).astype(np.float32))
        assert m.classes_.tolist() == np.unique(np.asarray(y)).tolist()
        assert copied and max(copied) <= 2, copied  # the two classes, not the 1,000 labels
    # the host path's checks, with its messages
    with pytest.raises(DataError, match="exactly 2 classes, got 3"):
        TridentGBDTClassifier()._encode_target(cp.asarray(np.arange(999) % 3), 999)
    with pytest.raises(DataError, match="continuous"):
        TridentGBDTClassifier()._encode_target(cp.asarray(np.array([0.5, 1.5] * 10)), 20)
    with pytest.raises(DataError, match="missing or infinite"):
        TridentGBDTClassifier()._encode_target(cp.asarray(np.array([0.0, 1.0, np.nan])), 3)
    with pytest.raises(DataError, match="one dimension"):
        TridentGBDTClassifier()._encode_target(cp.asarray(np.zeros((4, 2))), 4)
    # the regressor keeps a device target on the device, finite only
    r = TridentGBDTRegressor()._encode_target(cp.asarray(rng.normal(size=50)), 50)
    assert type(r).__module__.startswith("cupy") and r.dtype == np.float32
    with pytest.raises(DataError, match="finite"):
        TridentGBDTRegressor()._encode_target(cp.asarray(np.array([1.0, np.inf])), 2)
