"""KPI configuration: strict parsing, per-candidate verdicts, selection, and the rejected run."""
import json

import numpy as np
import pandas as pd
import pytest

from engine.errors import ConfigError
from engine.evaluate.evaluation import select
from engine.evaluate.kpi import KpiSpec, parse_threshold, task_metrics


def _spec(task="binary", **kw):
    return KpiSpec.from_config(kw, task)


# ---- parsing ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, metric, op, value", [
    ("roc_auc >= 0.75", "roc_auc", ">=", 0.75),
    ("  log_loss<0.5 ", "log_loss", "<", 0.5),
    ("latency_ms_per_1000 <= 1e2", "latency_ms_per_1000", "<=", 100.0),
    ("f1 > .6", "f1", ">", 0.6),
])
def test_thresholds_parse(text, metric, op, value):
    t = parse_threshold(text, task_metrics("binary"))
    assert (t.metric, t.op, t.value) == (metric, op, value)


@pytest.mark.parametrize("entries, words", [
    (["roc_auc >= 0.7", "roc_acu >= 0.75"], ["kpi.thresholds[1]", "roc_acu", "unknown metric", "roc_auc"]),
    (["roc_auc => 0.75"], ["kpi.thresholds[0]", "cannot parse", ">="]),
    (["roc_auc >= high"], ["kpi.thresholds[0]", "'roc_auc >= high'"]),
    (["roc_auc == 0.8"], ["kpi.thresholds[0]"]),
    (["roc_auc >= 0.7 and f1 > 0.5"], ["kpi.thresholds[0]"]),
    ([0.75], ["kpi.thresholds[0]", "not a string"]),
])
def test_bad_threshold_is_a_config_error_naming_the_entry(entries, words):
    with pytest.raises(ConfigError) as err:
        _spec(thresholds=entries)
    for w in words:
        assert w in str(err.value)


def test_classification_metric_on_regression_points_to_regression_kpis():
    with pytest.raises(ConfigError, match="kpi=regression"):
        _spec("regression", thresholds=["roc_auc >= 0.7"])


def test_primary_must_be_a_metric_of_the_task():
    with pytest.raises(ConfigError, match="kpi.primary"):
        _spec(primary="rmse")
    assert _spec("regression").primary == "rmse" and _spec("regression").maximize is False


def test_primary_direction_follows_the_metric():
    assert _spec(primary="roc_auc").maximize is True
    assert _spec(primary="log_loss").maximize is False
    assert _spec(primary="log_loss", maximize=True).maximize is True


def test_fixed_threshold_outside_0_1_is_an_error():
    with pytest.raises(ConfigError, match="kpi.threshold"):
        _spec(threshold=1.5)


def test_default_yaml_matches_the_schema():
    from engine.config import compose

    spec = KpiSpec.from_config(compose([]).kpi, "binary")
    assert spec.thresholds[0].text == "roc_auc >= 0.7" and spec.cost["fn"] == 5.0


@pytest.mark.parametrize("option, task, check", [
    ("strict", "binary", lambda s: s.interpretable and s.max_latency_ms_per_1000 == 50.0),
    ("regression", "regression", lambda s: s.primary == "rmse" and s.thresholds[0].metric == "r2"),
    ("none", "binary", lambda s: not s.enabled and s.thresholds == ()),
])
def test_every_kpi_option_composes_and_parses(option, task, check):
    from engine.config import compose

    assert check(KpiSpec.from_config(compose([f"kpi={option}"]).kpi, task))


# ---- verdicts ---------------------------------------------------------------------------------
def test_failure_states_measured_value_and_shortfall():
    spec = _spec(thresholds=["roc_auc >= 0.8", "log_loss <= 0.6"])
    fails = spec.check({"roc_auc": 0.75, "log_loss": 0.5}, interpretable=True)
    assert len(fails) == 1
    f = fails[0]
    assert f["metric"] == "roc_auc" and f["measured"] == 0.75 and f["shortfall"] == pytest.approx(0.05)
    assert "0.75" in f["message"] and ">= 0.8" in f["message"]


def test_undefined_metric_fails():
    fails = _spec(thresholds=["roc_auc >= 0.5"]).check({"roc_auc": float("nan")}, interpretable=True)
    assert fails and fails[0]["measured"] is None


def test_interpretable_constraint_rejects_opaque_models():
    spec = _spec(thresholds=[], interpretable=True)
    assert spec.check({}, interpretable=True) == []
    assert spec.check({}, interpretable=False)[0]["metric"] == "interpretable"


def test_latency_constraint_uses_the_measured_latency():
    spec = _spec(thresholds=[], max_latency_ms_per_1000=5.0)
    assert spec.needs_latency
    assert spec.check({}, True, latency=4.0) == []
    f = spec.check({}, True, latency=7.5)[0]
    assert f["metric"] == "latency_ms_per_1000" and f["shortfall"] == pytest.approx(2.5)


def test_fairness_gate_only_when_configured():
    gaps = {"demographic_parity_diff": 0.3, "equalized_odds_diff": 0.1}
    assert _spec(thresholds=[]).check({}, True, fairness=gaps) == []
    f = _spec(thresholds=[], max_demographic_parity_diff=0.2).check({}, True, fairness=gaps)
    assert [x["metric"] for x in f] == ["demographic_parity_diff"]


def test_disabled_kpis_gate_nothing():
    assert _spec(enabled=False, thresholds=["roc_auc >= 0.99"]).check({"roc_auc": 0.5}, False) == []


def _rec(name, value, passed=True):
    return {"name": name, "valid": {"roc_auc": value, "log_loss": 1 - value}, "kpi": {"passed": passed, "failures": []}}


def test_selection_takes_best_primary_among_qualifying():
    recs = [_rec("a", 0.80), _rec("b", 0.90, passed=False), _rec("c", 0.85), _rec("d", 0.85)]
    assert select(recs, _spec())["name"] == "c"
    assert select(recs, _spec(primary="log_loss"))["name"] == "c"
    assert select([_rec("a", 0.9, passed=False)], _spec()) is None


def test_latency_is_per_1000_rows_even_for_small_batches():
    from sklearn.linear_model import LogisticRegression

    from engine.evaluate.latency import latency_ms_per_1000

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)).astype(np.float32)
    est = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    calls = []
    est.predict_proba = lambda batch, f=est.predict_proba: calls.append(len(batch)) or f(batch)
    ms = latency_ms_per_1000(est, X, "binary", rows=1000, repeats=3)
    assert ms > 0 and calls == [1000] * 4  # one warm-up, then best of 3, each on 1,000 rows


# ---- a run where nobody qualifies --------------------------------------------------------------
def _trained(ctx):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from engine.train.candidate import Candidate

    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "gender": rng.choice(["f", "m"], n)})
    y = (rng.random(n) < 1 / (1 + np.exp(-(df.x1 + 0.5 * df.x2)))).astype(int)
    splits = {"train": np.arange(0, 400), "valid": np.arange(400, 500), "test": np.arange(500, 600)}
    X = {k: df[["x1", "x2"]].to_numpy(np.float32)[v] for k, v in splits.items()}
    ys = {k: y[v] for k, v in splits.items()}
    cands = []
    for name, est in (("logistic", LogisticRegression()), ("random_forest", RandomForestClassifier(20, max_depth=4,
                                                                                                      random_state=0))):
        cands.append(Candidate(name, est.fit(X["train"], ys["train"]), interpretable=name == "logistic"))
    ctx.state.update(frame=df, splits=splits, X=X, ysplit=ys, candidates=cands, task="binary", sensitive=["gender"])


STAGES = [("train", _trained), ("evaluate", "engine.evaluate.stage:evaluate"),
          ("select", "engine.evaluate.stage:select"), ("register", "engine.registry.stage:register")]


def test_run_with_no_qualifying_candidate_is_rejected_and_registers_nothing(tmp_path):
    from engine.config import compose
    from engine.errors import TridentError
    from engine.pipeline import run_pipeline

    cfg = compose([f"runs_dir={tmp_path / 'runs'}", "backend=cpu", "tracking=off",
                   "kpi.thresholds=['roc_auc >= 0.99','brier <= 0.01']"])
    ctx = run_pipeline(cfg, stages=STAGES)
    m = ctx.manifest.data
    assert m["status"] == "rejected"
    assert "logistic" in m["reason"] and "random_forest" in m["reason"] and "roc_auc" in m["reason"]
    assert [s["name"] for s in m["stages"]] == ["train", "evaluate", "select"]  # register never ran
    report = json.loads((ctx.run_dir / "evaluation.json").read_text())
    assert report["verdict"]["status"] == "rejected"
    for rec in report["candidates"]:
        assert {f["metric"] for f in rec["kpi"]["failures"]} == {"roc_auc", "brier"}
        assert all(f["shortfall"] > 0 for f in rec["kpi"]["failures"])
    assert m["gates"]["kpi"]["passed"] is False
    assert not (ctx.run_dir / "model").exists() and "registered_model" not in m
    assert not (ctx.run_dir / "model_card.html").exists()
    import engine

    with pytest.raises(TridentError, match="no packaged model .status 'rejected'"):
        engine.load(str(ctx.run_dir))


def test_register_refuses_without_a_passing_kpi_gate(tmp_path):
    from engine.config import compose
    from engine.errors import TridentError
    from engine.pipeline import run_pipeline

    cfg = compose([f"runs_dir={tmp_path / 'runs'}", "backend=cpu", "tracking=off"])
    with pytest.raises(TridentError, match="KPI gate"):
        run_pipeline(cfg, stages=[STAGES[0], STAGES[3]])
