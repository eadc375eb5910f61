"""Search: seeded plans, folds, cross-validated scores against a hand-made reference, the train stage."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.train.search import (
    SearchSettings,
    Trial,
    TrialResult,
    best_trial,
    cross_validate,
    make_folds,
    plan_trials,
    refit,
    score,
)

SPACE = {"C": {"low": 0.01, "high": 10.0, "log": True}, "class_weight": [None, "balanced"]}


def _data(n=400, seed=0, task="binary"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    z = X[:, 0] - X[:, 1] + 0.5 * X[:, 2] + rng.normal(size=n)
    return X, ((z > 0.3).astype(np.int64) if task == "binary" else z)


def _ctx(tmp_path, overrides=()):
    from engine.backend import cpu_backend
    from engine.config import compose
    from engine.pipeline import RunContext
    from engine.registry.manifest import Manifest

    cfg = compose(["backend=cpu", "tracking.enabled=false", f"runs_dir={tmp_path}", *overrides])
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True)
    return RunContext(cfg=cfg, run_id="t", run_dir=run_dir, backend=cpu_backend(), manifest=Manifest("t", run_dir))


def _group(group: str, option: str) -> str:
    """``group=option`` when conf/config.yaml lists the group in its defaults, else ``+group=option``."""
    from engine.config import conf_dir

    text = (Path(conf_dir()) / "config.yaml").read_text()
    return f"{group}={option}" if f"- {group}:" in text else f"+{group}={option}"


# ---- plans -----------------------------------------------------------------------------------------

def test_random_plan_is_seeded():
    a = plan_trials(SPACE, n_trials=5, seed=3)
    assert a == plan_trials(SPACE, n_trials=5, seed=3)
    assert [t.params for t in a] != [t.params for t in plan_trials(SPACE, n_trials=5, seed=4)]


def test_random_plan_draws_distinct_points_inside_the_ranges_with_their_own_seeds():
    space = {"lr": {"low": 0.001, "high": 1.0, "log": True}, "depth": {"low": 2, "high": 9, "int": True}}
    trials = plan_trials(space, n_trials=30, seed=0)
    assert len(trials) == 30 and len({repr(sorted(t.params.items())) for t in trials}) == 30
    assert all(0.001 <= t.params["lr"] <= 1.0 and isinstance(t.params["depth"], int) for t in trials)
    assert all(2 <= t.params["depth"] <= 9 for t in trials)
    assert len({t.seed for t in trials}) == 30
    # log-uniform: about half the draws below the geometric midpoint
    assert 8 <= sum(t.params["lr"] < math.sqrt(0.001) for t in trials) <= 22


def test_a_finite_space_smaller_than_n_trials_is_enumerated():
    trials = plan_trials({"a": [1, 2], "b": ["x", None]}, n_trials=10, seed=0)
    assert sorted((t.params["a"], str(t.params["b"])) for t in trials) == [(1, "None"), (1, "x"), (2, "None"), (2, "x")]


def test_grid_plan_takes_every_combination_with_ranges_on_grid_points():
    trials = plan_trials({"C": {"low": 0.01, "high": 1.0, "log": True}, "w": [None, "balanced"]},
                         method="grid", grid_points=3, seed=0)
    assert len(trials) == 6
    assert sorted({t.params["C"] for t in trials}) == [0.01, 0.1, 1.0]


def test_an_empty_space_is_one_trial_with_the_defaults():
    trials = plan_trials({}, n_trials=6, seed=0)
    assert len(trials) == 1 and trials[0].params == {}


def test_a_grid_larger_than_max_grid_is_a_config_error():
    with pytest.raises(ConfigError, match="search.max_grid"):
        plan_trials({"a": list(range(20)), "b": list(range(20))}, method="grid", max_grid=100)


@pytest.mark.parametrize("space, match", [
    ({"C": []}, r"space\.C: an empty list"),
    ({"C": {"low": 1.0, "high": 1.0}}, r"space\.C: high"),
    ({"C": {"low": 0.0, "high": 1.0, "log": True}}, r"space\.C: a log range needs low > 0"),
    ({"C": {"low": 0.0}}, r"space\.C: a range needs"),
])
def test_an_invalid_space_names_the_parameter(space, match):
    with pytest.raises(ConfigError, match=match):
        plan_trials(space)


# ---- folds and scores --------------------------------------------------------------------------------

def test_folds_partition_the_rows_and_are_stratified():
    y = (np.arange(300) % 4 == 0).astype(int)
    folds = make_folds(y, "binary", 3, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(300))
    assert all(y[f].sum() == 25 for f in folds)
    assert all(np.array_equal(a, b) for a, b in zip(folds, make_folds(y, "binary", 3, seed=1)))


def test_more_folds_than_rows_of_a_class_is_a_config_error():
    with pytest.raises(ConfigError, match="search.folds"):
        make_folds(np.r_[np.zeros(50, int), np.ones(2, int)], "binary", 3, seed=0)


def test_neg_rmse_is_minus_the_root_mean_squared_error():
    from sklearn.dummy import DummyRegressor

    est = DummyRegressor(strategy="constant", constant=1.0).fit(np.zeros((3, 1)), [0, 0, 0])
    assert score("neg_rmse", est, np.zeros((3, 1)), np.array([1.0, 3.0, 1.0])) == pytest.approx(-math.sqrt(4 / 3))


def test_a_scoring_for_the_wrong_task_is_a_config_error():
    with pytest.raises(ConfigError, match="search.scoring"):
        SearchSettings("regression", scoring="roc_auc")


# ---- cross-validation ------------------------------------------------------------------------------

def test_cv_scores_equal_a_hand_made_cross_validation():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    X, y = _data()
    folds = make_folds(y, "binary", 3, seed=2)
    trial = Trial(0, {"C": 0.3, "max_iter": 1000}, seed=11)
    res = cross_validate({"logistic": [trial]}, X, y, folds, SearchSettings("binary"))["logistic"][0]
    expected = []
    for f in folds:
        train = np.setdiff1d(np.arange(len(y)), f)
        m = LogisticRegression(C=0.3, max_iter=1000, random_state=11).fit(X[train], y[train])
        expected.append(roc_auc_score(y[f], m.predict_proba(X[f])[:, 1]))
    assert res.fold_scores == pytest.approx(expected, abs=1e-12)
    assert res.mean == pytest.approx(np.mean(expected)) and res.std == pytest.approx(np.std(expected))


def test_cross_validation_in_process_is_deterministic():
    X, y = _data(seed=1)
    folds = make_folds(y, "binary", 3, seed=0)
    plans = {"random_forest": plan_trials({"max_depth": [2, 4, 6], "n_estimators": [10, 20]}, n_trials=3, seed=5),
             "hist_gbdt": plan_trials({"learning_rate": {"low": 0.05, "high": 0.3}}, n_trials=2, seed=6)}
    a = cross_validate(plans, X, y, folds, SearchSettings("binary"))
    b = cross_validate(plans, X, y, folds, SearchSettings("binary"))
    def scores(res):
        return {n: [r.fold_scores for r in v] for n, v in res.items()}

    assert scores(a) == scores(b)


def test_a_failing_trial_is_recorded_and_the_others_still_count():
    X, y = _data()
    folds = make_folds(y, "binary", 3, seed=0)
    trials = [Trial(0, {"C": -1.0}, 1), Trial(1, {"C": 1.0}, 2)]
    res = cross_validate({"logistic": trials}, X, y, folds, SearchSettings("binary"))["logistic"]
    assert res[0].error and "C" in res[0].error and math.isnan(res[0].mean)
    assert res[1].error is None and best_trial(res).index == 1
    assert res[0].record()["mean"] is None  # JSON-safe


def test_an_unknown_parameter_stops_the_search_with_a_config_error():
    X, y = _data()
    with pytest.raises(ConfigError, match="n_trees"):
        cross_validate({"random_forest": [Trial(0, {"n_trees": 3}, 1)]}, X, y, make_folds(y, "binary", 3, 0),
                       SearchSettings("binary"))


def test_best_trial_takes_the_highest_mean_and_the_earliest_on_a_tie():
    def r(i, m):
        return TrialResult("c", i, {}, 0, [m], m, 0.0, 0.0)

    assert best_trial([r(0, 0.7), r(1, 0.8), r(2, 0.8)]).index == 1
    assert best_trial([TrialResult("c", 0, {}, 0, [], float("nan"), float("nan"), 0.0, error="x")]) is None


def test_refit_early_stops_on_the_validation_split():
    X, y = _data(n=600)
    y = np.where(np.random.default_rng(3).random(600) < 0.3, 1 - y, y)
    best = {"hist_gbdt": TrialResult("hist_gbdt", 0, {"learning_rate": 0.3}, 4, [], 0.0, 0.0, 0.0)}
    settings = SearchSettings("binary", early_stopping_rounds=5)
    out = refit(best, X[:400], y[:400], X[400:], y[400:], settings)["hist_gbdt"]
    assert out["early_stopped_on"] == "validation split"
    assert out["n_iter"] < 300 and 0.5 < out["valid_score"] <= 1.0


# ---- config ----------------------------------------------------------------------------------------

def test_model_options_keep_one_candidate_and_a_sweep_over_them_composes():
    from engine.config import compose, expand_sweep

    cfg = compose([_group("model", "logistic")])
    assert list(cfg.model.candidates) == ["logistic"]
    assert cfg.model.registered_name == "credit_default"
    jobs = expand_sweep([_group("model", "logistic,hist_gbdt")])
    assert [list(compose(j).model.candidates) for j in jobs] == [["logistic"], ["hist_gbdt"]]


def test_default_search_is_small_and_thorough_is_larger():
    from engine.config import compose

    d = compose([_group("search", "default")]).search
    t = compose([_group("search", "thorough")]).search
    assert (d.method.value, d.n_trials, d.folds) == ("random", 6, 3)
    assert t.n_trials > d.n_trials and t.folds >= d.folds


# ---- the train stage -------------------------------------------------------------------------------

def _train_ctx(tmp_path, overrides=()):
    ctx = _ctx(tmp_path, overrides)
    X, y = _data(n=700, seed=4)
    ctx.state.update(task="binary", X={"train": X[:500], "valid": X[500:600], "test": X[600:]},
                     ysplit={"train": y[:500], "valid": y[500:600], "test": y[600:]})
    ctx.cfg.model.candidates = ["logistic", "hist_gbdt"]
    ctx.cfg.search.n_trials = 2
    ctx.cfg.search.folds = 3
    return ctx


def test_train_stage_hands_candidates_to_evaluation_and_records_them(tmp_path):
    from engine.train.candidate import Candidate
    from engine.train.stage import train

    ctx = _train_ctx(tmp_path)
    train(ctx)
    cands = ctx.state["candidates"]
    assert [c.name for c in cands] == ["logistic", "hist_gbdt"] and all(isinstance(c, Candidate) for c in cands)
    lg, hg = cands
    assert lg.interpretable and not hg.interpretable and lg.library == "sklearn"
    assert len(lg.trials) == 2 and lg.cv["metric"] == "roc_auc" and lg.cv["folds"] == 3
    assert lg.cv["mean"] == max(t["mean"] for t in lg.trials)
    assert hg.search["early_stopped_on"] == "validation split"
    assert lg.estimator.predict_proba(ctx.state["X"]["test"]).shape == (100, 2)
    rec = json.loads((ctx.run_dir / "candidates.json").read_text())
    assert [c["name"] for c in rec["candidates"]] == ["logistic", "hist_gbdt"]
    assert "estimator" not in rec["candidates"][0] and rec["executor"] == "in-process"
    assert ctx.metrics["cv_logistic_roc_auc"] == pytest.approx(lg.cv["mean"])
    assert "cv_hist_gbdt_roc_auc_std" in ctx.metrics
    assert ctx.manifest["executor"]["kind"] == "in-process"
    assert {"search.logistic", "search.hist_gbdt", "search.folds"} <= set(ctx.manifest["seeds"])


def test_train_stage_is_reproducible_for_a_fixed_seed(tmp_path):
    from engine.train.stage import train

    runs = []
    for i in range(2):
        ctx = _train_ctx(tmp_path / str(i))
        train(ctx)
        runs.append([(c.name, c.params, c.cv["fold_scores"]) for c in ctx.state["candidates"]])
    assert runs[0] == runs[1]


def test_train_stage_with_the_cuml_library_missing_notes_the_fallback(tmp_path):
    from engine.backend import compat
    from engine.backend.select import Backend
    from engine.train.stage import train

    if compat.cuml() is not None:
        pytest.skip("cuML is installed here; the fallback path is not reachable")
    import pandas

    ctx = _train_ctx(tmp_path)
    ctx.backend = Backend("gpu", np, pandas, "cuml", "gpu")
    ctx.cfg.model.candidates = ["logistic"]
    train(ctx)
    assert ctx.state["candidates"][0].library == "sklearn"
    assert any("logistic" in n and "scikit-learn" in n for n in ctx.manifest["notes"])
    assert ctx.state["candidates"][0].notes


def test_train_stage_rejects_unknown_and_duplicate_candidates(tmp_path):
    from engine.train.stage import train

    ctx = _train_ctx(tmp_path)
    ctx.cfg.model.candidates = ["logistic", "logistic"]
    with pytest.raises(ConfigError, match="more than once"):
        train(ctx)
    ctx.cfg.model.candidates = ["svm"]
    with pytest.raises(ConfigError, match="unknown candidate 'svm'"):
        train(ctx)


def test_train_stage_uses_configured_spaces_and_fixed_params(tmp_path):
    from engine.train.stage import train

    ctx = _train_ctx(tmp_path)
    ctx.cfg.model.candidates = ["random_forest"]
    ctx.cfg.model.spaces = {"random_forest": {"max_depth": [3]}}
    ctx.cfg.model.params = {"random_forest": {"n_estimators": 15}}
    train(ctx)
    c = ctx.state["candidates"][0]
    assert c.params == {"max_depth": 3, "n_estimators": 15} and len(c.trials) == 1
    assert c.estimator.n_estimators == 15 and c.estimator.max_depth == 3


def test_a_candidate_whose_every_trial_fails_is_left_out_and_recorded(tmp_path):
    from engine.errors import TridentError
    from engine.train.stage import train

    ctx = _train_ctx(tmp_path)
    ctx.cfg.model.candidates = ["logistic", "random_forest"]
    ctx.cfg.model.spaces = {"logistic": {"C": [-1.0]}, "random_forest": {"n_estimators": [10], "max_depth": [3]}}
    train(ctx)
    assert [c.name for c in ctx.state["candidates"]] == ["random_forest"]
    rec = json.loads((ctx.run_dir / "candidates.json").read_text())["candidates"][0]
    assert rec["name"] == "logistic" and rec["failed"] and "C" in rec["error"]
    ctx2 = _train_ctx(tmp_path / "all")
    ctx2.cfg.model.candidates = ["logistic"]
    ctx2.cfg.model.spaces = {"logistic": {"C": [-1.0]}}
    with pytest.raises(TridentError, match="every trial of every candidate failed: logistic"):
        train(ctx2)
