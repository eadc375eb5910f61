"""Sensitive attributes and proxies: matching, association measures against references, the govern stage."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from engine.governance.sensitive import (
    abs_pearson_many,
    associations,
    correlation_ratio,
    cramers_v,
    detect_proxies,
    resolve_sensitive,
    review,
)


def _ctx(tmp_path, overrides=()):
    from engine.backend import cpu_backend
    from engine.config import compose
    from engine.pipeline import RunContext
    from engine.registry.manifest import Manifest

    cfg = compose(["backend=cpu", "tracking.enabled=false", f"runs_dir={tmp_path}", *overrides])
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True)
    return RunContext(cfg=cfg, run_id="t", run_dir=run_dir, backend=cpu_backend(), manifest=Manifest("t", run_dir))


def _people(n=3000, seed=0):
    """Gender, a near-copy of it (5% of values swapped), age, a numeric proxy of age and unrelated columns."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(["female", "male"], size=n)
    flip = rng.random(n) < 0.05
    salutation = np.where((gender == "male") ^ flip, "Mr", "Ms")
    age = rng.integers(18, 80, size=n).astype(float)
    return pd.DataFrame({
        "ID": np.arange(n),
        "Gender": pd.Categorical(gender),
        "salutation": pd.Categorical(salutation),
        "AGE": age,
        "years_since_birth_approx": age + rng.normal(0, 2, size=n),
        "income": rng.lognormal(10, 0.5, size=n),
        "region": pd.Categorical(rng.choice(list("abcdefgh"), size=n)),
        "employer": pd.Categorical(rng.choice([f"e{i}" for i in range(400)], size=n)),
        "target": (rng.random(n) < 0.2).astype(np.int8),
    })


KINDS = {"ID": "id", "Gender": "categorical", "salutation": "categorical", "AGE": "numeric",
         "years_since_birth_approx": "numeric", "income": "numeric", "region": "categorical",
         "employer": "categorical", "target": "target"}


def test_sensitive_names_match_columns_ignoring_case_and_absent_ones_are_listed():
    found, absent = resolve_sensitive(["gender", "age", "race"], ["Gender", "AGE", "income", "age"])
    assert found == {"gender": ["Gender"], "age": ["AGE", "age"]}
    assert absent == ["race"]


def test_cramers_v_matches_the_bias_corrected_formula():
    from scipy.stats.contingency import chi2_contingency

    rng = np.random.default_rng(3)
    a = rng.integers(0, 3, 500)
    b = (a + (rng.random(500) < 0.4) * rng.integers(0, 4, 500)) % 4
    table = np.zeros((3, 4))
    np.add.at(table, (a, b), 1)
    chi2 = chi2_contingency(table, correction=False)[0]
    n, r, k = 500, 3, 4
    phi2 = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    rc, kc = r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)
    assert cramers_v(a, b) == pytest.approx(np.sqrt(phi2 / min(rc - 1, kc - 1)), rel=1e-10)


def test_cramers_v_of_independent_many_level_columns_is_near_zero():
    rng = np.random.default_rng(4)
    assert cramers_v(rng.integers(0, 2, 3000), rng.integers(0, 500, 3000)) < 0.1


def test_correlation_ratio_matches_a_hand_computed_adjusted_eta():
    rng = np.random.default_rng(5)
    g = rng.integers(0, 4, 400)
    x = g * 0.7 + rng.normal(size=400)
    x[::17] = np.nan
    m = ~np.isnan(x)
    gm, xm = g[m], x[m]
    ssb = sum(len(xm[gm == c]) * (xm[gm == c].mean() - xm.mean()) ** 2 for c in range(4))
    sst = ((xm - xm.mean()) ** 2).sum()
    n = m.sum()
    adj = 1 - (1 - ssb / sst) * (n - 1) / (n - 4)
    assert correlation_ratio(g, 4, x) == pytest.approx(np.sqrt(adj), rel=1e-9)


def test_abs_pearson_uses_rows_where_both_values_are_present():
    rng = np.random.default_rng(6)
    s = rng.normal(size=300)
    X = np.column_stack([-2 * s + rng.normal(size=300), rng.normal(size=300)])
    s[::7] = np.nan
    X[::5, 0] = np.nan
    got = abs_pearson_many(s, X)
    for j in range(2):
        m = ~np.isnan(s) & ~np.isnan(X[:, j])
        assert got[j] == pytest.approx(abs(np.corrcoef(s[m], X[m, j])[0, 1]), rel=1e-9)


def test_a_near_copy_of_gender_is_flagged_as_a_proxy_and_excluded():
    df = _people()
    rep = review(df, KINDS, sensitive_names=["gender", "age"], threshold=0.5, target="target", id_column="ID")
    assert rep["proxies"]["salutation"]["sensitive"] == "Gender"
    assert rep["proxies"]["salutation"]["measure"] == "cramers_v"
    assert rep["proxies"]["salutation"]["value"] > 0.85
    assert "salutation" in rep["excluded"] and "proxy" in rep["excluded"]["salutation"]
    assert {"Gender", "AGE"} <= set(rep["excluded"])


def test_a_numeric_proxy_of_age_is_flagged_and_unrelated_columns_are_not():
    rep = review(_people(), KINDS, sensitive_names=["gender", "age"], threshold=0.5, target="target", id_column="ID")
    assert rep["proxies"]["years_since_birth_approx"]["measure"] == "abs_pearson"
    assert set(rep["proxies"]) == {"salutation", "years_since_birth_approx"}
    assert "ID" not in {a["feature"] for a in rep["associations"]}
    assert "target" not in {a["feature"] for a in rep["associations"]}


def test_proxies_are_reported_but_kept_when_drop_proxies_is_false():
    rep = review(_people(), KINDS, sensitive_names=["gender"], threshold=0.5, drop_proxies=False, target="target")
    assert "salutation" in rep["proxies"] and "salutation" not in rep["excluded"]
    assert rep["proxies_kept"] == ["salutation"]


def test_association_runs_on_a_seeded_sample_of_a_large_frame():
    df = _people(5000)
    a = associations(df, ["Gender"], ["salutation", "income"], KINDS, sample_rows=1000, seed=1)
    b = associations(df, ["Gender"], ["salutation", "income"], KINDS, sample_rows=1000, seed=1)
    full = associations(df, ["Gender"], ["salutation", "income"], KINDS, sample_rows=0)
    assert a == b
    assert a != full
    assert review(df, KINDS, sensitive_names=["gender"], threshold=0.5, sample_rows=1000)["rows_checked"] == 1000


def test_detect_proxies_keeps_the_strongest_association_per_feature():
    assoc = [{"feature": "f", "sensitive": "a", "measure": "cramers_v", "value": 0.6},
             {"feature": "f", "sensitive": "b", "measure": "abs_pearson", "value": 0.8},
             {"feature": "g", "sensitive": "a", "measure": "cramers_v", "value": 0.2}]
    assert detect_proxies(assoc, 0.5) == {"f": {"sensitive": "b", "measure": "abs_pearson", "value": 0.8}}


def test_govern_stage_writes_its_record_state_and_gate(tmp_path):
    from engine.train.stage import govern

    ctx = _ctx(tmp_path, ["data.id_column=ID"])
    ctx.state.update(frame=_people(), target="target", task="binary", kinds=KINDS)
    govern(ctx)
    rec = json.loads((ctx.run_dir / "governance.json").read_text())
    assert rec["sensitive_found"] == {"gender": ["Gender"], "age": ["AGE"]}
    assert "race" in rec["sensitive_absent"]
    assert ctx.state["sensitive"] == ["Gender", "AGE"]
    assert set(ctx.state["excluded"]) == {"Gender", "AGE", "salutation", "years_since_birth_approx"}
    gate = ctx.manifest["gates"]["no_sensitive_features"]
    assert gate["passed"] is True and gate["sensitive_used_as_features"] == []


def test_disabled_governance_excludes_nothing_and_fails_the_gate(tmp_path):
    from engine.train.stage import govern

    ctx = _ctx(tmp_path, ["governance.enabled=false"])
    ctx.state.update(frame=_people(), target="target", task="binary", kinds=KINDS)
    govern(ctx)
    assert ctx.state["excluded"] == {}
    assert ctx.state["sensitive"] == ["Gender", "AGE"]
    assert ctx.manifest["gates"]["no_sensitive_features"]["passed"] is False


def test_sensitive_columns_and_proxies_never_reach_the_feature_names(tmp_path):
    from engine.train.stage import features, govern, split

    ctx = _ctx(tmp_path, ["data.id_column=ID", "data.date_column=null"])
    frame = _people(800)
    ctx.state.update(frame=frame, y=frame["target"].to_numpy(), target="target", task="binary", kinds=KINDS)
    govern(ctx)
    split(ctx)
    features(ctx)
    excluded = {"Gender", "AGE", "salutation", "years_since_birth_approx"}
    names = ctx.state["feature_names"]
    assert names and not [n for n in names if n in excluded or any(n.startswith(c + s) for c in excluded
                                                                       for s in ("=", "__", "_"))]
    assert not excluded & set(ctx.state["features"].input_columns_)
    assert {"income", "region", "employer"} <= set(ctx.state["features"].input_columns_)
    rep = json.loads((ctx.run_dir / "features_report.json").read_text())
    assert rep["dropped"]["Gender"].startswith("sensitive") and rep["dropped"]["salutation"].startswith("proxy")
    assert rep["dropped"]["ID"] == "identifier" and rep["dropped"]["target"] == "target"
    assert rep["pipeline"]["columns"]["Gender"]["fate"] == "dropped"
    X = ctx.state["X"]
    assert X["train"].shape == (len(ctx.state["splits"]["train"]), len(names)) and X["test"].dtype == np.float32
    assert any(f["path"].startswith("features/") for f in ctx.manifest["files"])
