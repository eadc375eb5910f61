"""Estimator registry: every candidate builds and fits for each task, seeds, parameters, cuML fallback."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.train import registry

BUILTIN = ["logistic", "random_forest", "hist_gbdt", "trident_gbdt"]
#: Small models keep the fits quick.
SMALL = {"logistic": {}, "random_forest": {"n_estimators": 20}, "hist_gbdt": {"max_iter": 30},
         "trident_gbdt": {"n_estimators": 30}}


def _data(task, n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    z = X[:, 0] - 0.5 * X[:, 1] + rng.normal(scale=0.5, size=n)
    return X, ((z > 0).astype(np.int64) if task == "binary" else z)


def test_the_builtin_candidates_are_registered():
    assert set(BUILTIN) <= set(registry.available())
    assert registry.get_spec("logistic").interpretable is True
    assert {n for n in BUILTIN if registry.get_spec(n).supports_early_stopping} == {"hist_gbdt", "trident_gbdt"}


@pytest.mark.parametrize("task", ["binary", "regression"])
@pytest.mark.parametrize("name", BUILTIN)
def test_each_candidate_builds_and_fits_for_each_task(name, task):
    X, y = _data(task)
    built = registry.build_estimator(name, task, SMALL[name], seed=3)
    est = registry.fit_estimator(name, built.estimator, X[:200], y[:200])
    if task == "binary":
        p = np.asarray(est.predict_proba(X[200:]))
        assert p.shape == (100, 2) and np.all((p >= 0) & (p <= 1))
        assert np.mean((p[:, 1] > 0.5) == y[200:]) > 0.7
    else:
        pred = np.asarray(est.predict(X[200:]))
        assert np.corrcoef(pred, y[200:])[0, 1] > 0.7
    assert built.library in ("sklearn", "trident")


@pytest.mark.parametrize("name", BUILTIN)
def test_default_space_parameters_exist_on_the_estimator(name):
    spec = registry.get_spec(name)
    for task in ("binary", "regression"):
        params = registry.build_estimator(name, task, seed=0).estimator.get_params()
        names = set(spec.space) - ({"C", "class_weight"} if (name, task) == ("logistic", "regression") else set())
        assert names <= set(params), (name, task)


def test_the_seed_reaches_random_state():
    assert registry.build_estimator("random_forest", "binary", seed=17).estimator.random_state == 17
    assert registry.build_estimator("hist_gbdt", "regression", seed=5).estimator.random_state == 5
    assert registry.build_estimator("trident_gbdt", "binary", seed=9).estimator.random_state == 9


def test_logistic_for_regression_is_ridge_with_alpha_the_inverse_of_C():
    from sklearn.linear_model import Ridge

    est = registry.build_estimator("logistic", "regression", {"C": 4.0, "class_weight": "balanced"}).estimator
    assert isinstance(est, Ridge) and est.alpha == pytest.approx(0.25)


def test_fixed_parameters_apply_and_searched_ones_override_them():
    est = registry.build_estimator("hist_gbdt", "binary", {"max_iter": 50}).estimator
    assert est.max_iter == 50
    assert registry.build_estimator("hist_gbdt", "binary").estimator.max_iter == 300


def test_early_stopping_uses_an_inner_validation_share():
    es = registry.EarlyStopping(rounds=7, fraction=0.2)
    hgb = registry.build_estimator("hist_gbdt", "binary", early_stopping=es).estimator
    assert (hgb.early_stopping, hgb.n_iter_no_change, hgb.validation_fraction) == (True, 7, 0.2)
    tg = registry.build_estimator("trident_gbdt", "binary", early_stopping=es).estimator
    assert (tg.early_stopping, tg.n_iter_no_change, tg.validation_fraction) == (True, 7, 0.2)
    assert registry.build_estimator("hist_gbdt", "binary").estimator.early_stopping is False


def test_fit_with_a_validation_set_stops_early_on_it():
    X, y = _data("binary", n=600)
    y = np.where(np.random.default_rng(1).random(600) < 0.3, 1 - y, y)  # noisy: stops early
    for name in ("hist_gbdt", "trident_gbdt"):
        built = registry.build_estimator(name, "binary", {"learning_rate": 0.3},
                                         early_stopping=registry.EarlyStopping(5, 0.1))
        est = registry.fit_estimator(name, built.estimator, X[:400], y[:400], X[400:], y[400:])
        assert registry.n_iterations(est) < 300, name


def test_an_unknown_candidate_lists_the_available_ones():
    with pytest.raises(ConfigError, match="unknown candidate 'xgb'.*hist_gbdt.*logistic"):
        registry.get_spec("xgb")


def test_an_unknown_parameter_is_a_config_error_naming_candidate_and_parameter():
    with pytest.raises(ConfigError, match=r"model.spaces.random_forest.*'n_trees'"):
        registry.build_estimator("random_forest", "binary", {"n_trees": 10})


def test_an_unknown_task_is_a_config_error():
    with pytest.raises(ConfigError, match="data.task"):
        registry.build_estimator("logistic", "multiclass")


@pytest.mark.parametrize("name", ["logistic", "random_forest", "hist_gbdt"])
def test_without_cuml_the_cuml_library_falls_back_to_sklearn_with_a_note(name):
    from engine.backend import compat

    if compat.cuml() is not None:
        pytest.skip("cuML is installed here; the fallback path is not reachable")
    built = registry.build_estimator(name, "binary", library="cuml")
    assert built.library == "sklearn"
    assert type(built.estimator).__module__.startswith("sklearn")
    assert built.notes and "scikit-learn" in built.notes[0] and name in built.notes[0]


def test_trident_gbdt_is_trident_s_own_on_any_library():
    assert registry.build_estimator("trident_gbdt", "binary", library="cuml").library == "trident"


def test_a_missing_gbdt_module_is_a_clear_error_naming_it():
    code = ("import sys; sys.modules['engine.train.gbdt'] = None\n"
            "from engine.train import registry\n"
            "from engine.errors import ConfigError\n"
            "try:\n    registry.build_estimator('trident_gbdt', 'binary')\n"
            "except ConfigError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "engine.train.gbdt" in out.stdout and "model.candidates" in out.stdout, out.stderr
