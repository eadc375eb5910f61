"""Profiling: statistics against NumPy / pandas / scipy references, warnings, determinism, the report."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.atomic import dumps_json
from engine.config.base import ProfileConfig
from engine.data.profiling import (
    QUANTILES,
    _rank_rows,
    _searchsorted_rows,
    cramers_v,
    profile_frame,
)
from engine.data.profiling_html import render_html

CREDIT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "credit_data.csv"


def _cfg(**kw):
    return ProfileConfig(**{"threads": 1, **kw})


def _col(profile, name):
    return next(c for c in profile["columns"] if c["name"] == name)


def _warned(profile, kind):
    return {w["column"] for w in profile["warnings"] if w["type"] == kind}


@pytest.fixture(scope="module")
def mixed():
    """Numeric columns with NaNs and infinities, categoricals with missing values, a date, a binary target."""
    rng = np.random.default_rng(7)
    n = 5000
    a = rng.normal(3.0, 2.0, n)
    a[rng.random(n) < 0.1] = np.nan
    b = rng.exponential(5.0, n) - 1.0
    b[:40] = 0.0
    b[rng.random(n) < 0.05] = np.nan
    c = np.round(rng.normal(0, 1, n), 1)  # many ties
    c[:3] = [np.inf, -np.inf, np.inf]
    cat = pd.Series(rng.choice(["red", "green", "blue", "cyan"], n, p=[0.5, 0.3, 0.15, 0.05]), dtype="object")
    cat[rng.random(n) < 0.07] = None
    frame = pd.DataFrame({
        "a": a, "b": b, "c": c,
        "k": rng.integers(-3, 4, n),
        "cat": cat,
        "lvl": pd.Series(rng.choice(list("pqrstu"), n)).astype("category"),
        "when": pd.Timestamp("2021-01-15") + pd.to_timedelta(rng.integers(0, 700, n), unit="D"),
        "y": rng.integers(0, 2, n),
    })
    kinds = {"a": "numeric", "b": "numeric", "c": "numeric", "k": "numeric", "cat": "categorical",
             "lvl": "categorical", "when": "datetime"}
    return frame, kinds


# ------------------------------------------------------------------------------------------------
# numeric statistics
# ------------------------------------------------------------------------------------------------
def test_numeric_moments_and_quantiles_match_numpy(mixed):
    frame, kinds = mixed
    p = profile_frame(frame, kinds, "y", "binary", _cfg(precision="float64"))
    for name in ("a", "b", "k"):
        v = frame[name].to_numpy(dtype=float)
        e = _col(p, name)
        assert e["count"] == int(np.sum(~np.isnan(v)))
        assert e["missing"] == {"count": int(np.isnan(v).sum()), "share": pytest.approx(np.isnan(v).mean())}
        assert e["mean"] == pytest.approx(np.nanmean(v), rel=1e-10)
        assert e["std"] == pytest.approx(np.nanstd(v, ddof=1), rel=1e-10)
        assert e["min"] == np.nanmin(v) and e["max"] == np.nanmax(v)
        ref = np.nanquantile(v, [q for _, q in QUANTILES])
        assert [e["quantiles"][k] for k, _ in QUANTILES] == pytest.approx(ref, rel=1e-10, abs=1e-12)
        assert e["distinct"] == frame[name].nunique()
        assert e["zeros"] == int(np.sum(v == 0)) and e["negatives"] == int(np.sum(v < 0))


def test_histogram_counts_equal_numpy_histogram(mixed):
    frame, kinds = mixed
    for precision, dtype in (("float64", np.float64), ("float32", np.float32)):
        p = profile_frame(frame, kinds, "y", "binary", _cfg(precision=precision, bins=13))
        for name in ("a", "b", "c", "k"):
            v = frame[name].to_numpy(dtype=dtype)
            counts, edges = np.histogram(v[np.isfinite(v)], bins=13)
            h = _col(p, name)["histogram"]
            assert h["counts"] == counts.tolist(), (precision, name)
            assert h["edges"] == pytest.approx(edges.astype(float), rel=1e-6)


def test_float32_precision_is_close_to_float64(mixed):
    frame, kinds = mixed
    p32 = profile_frame(frame, kinds, "y", "binary", _cfg())
    v = frame["a"].to_numpy()
    e = _col(p32, "a")
    assert e["mean"] == pytest.approx(np.nanmean(v), rel=1e-6)
    assert e["std"] == pytest.approx(np.nanstd(v, ddof=1), rel=1e-6)
    assert e["quantiles"]["p50"] == pytest.approx(np.nanmedian(v), rel=1e-6)


def test_infinities_are_counted_and_kept_out_of_moments(mixed):
    frame, kinds = mixed
    p = profile_frame(frame, kinds, "y", "binary", _cfg(precision="float64"))
    e = _col(p, "c")
    v = frame["c"].to_numpy()
    fin = v[np.isfinite(v)]
    assert e["infinite"] == 3
    assert e["min"] is None and e["max"] is None  # -inf / +inf have no JSON number
    assert e["mean"] == pytest.approx(fin.mean(), rel=1e-10)
    assert e["std"] == pytest.approx(fin.std(ddof=1), rel=1e-10)
    assert e["distinct"] == frame["c"].nunique()


def test_dominant_value_is_reported_only_above_half():
    v = np.r_[np.full(70, 2.5), np.arange(30.0)]
    p = profile_frame(pd.DataFrame({"x": v, "z": np.arange(100.0), "y": np.arange(100) % 2}), {}, "y", "binary",
                      _cfg())
    assert _col(p, "x")["dominant_value"] == 2.5 and _col(p, "x")["dominant_share"] == pytest.approx(0.7)
    assert _col(p, "z")["dominant_value"] is None


def test_batched_searchsorted_matches_numpy():
    rng = np.random.default_rng(3)
    X = np.sort(rng.integers(0, 20, (4, 101)).astype(float), axis=1)
    X[1, 90:] = np.nan  # NaN last, excluded through hi
    vals = rng.integers(-2, 23, (4, 9)).astype(float)
    hi = np.array([101, 90, 101, 50])
    for side in ("left", "right"):
        got = _searchsorted_rows(np, X, vals, side, hi)
        ref = np.stack([np.searchsorted(X[j, :hi[j]], vals[j], side=side) for j in range(4)])
        np.testing.assert_array_equal(got, ref)


def test_ranks_match_scipy_with_ties_and_nans():
    from scipy.stats import rankdata

    rng = np.random.default_rng(4)
    S = rng.integers(0, 30, (3, 400)).astype(float)
    S[rng.random(S.shape) < 0.1] = np.nan
    S[0, :4] = [-0.0, 0.0, -np.inf, np.inf]
    np.testing.assert_allclose(_rank_rows(np, S), rankdata(S, axis=1, nan_policy="omit"), equal_nan=True)


# ------------------------------------------------------------------------------------------------
# categorical and datetime statistics
# ------------------------------------------------------------------------------------------------
def test_top_categories_match_value_counts(mixed):
    frame, kinds = mixed
    p = profile_frame(frame, kinds, "y", "binary", _cfg(top_k=3))
    for name in ("cat", "lvl"):
        e = _col(p, name)
        vc = frame[name].value_counts()
        assert [(t["value"], t["count"]) for t in e["top"]] == [(str(k), int(v)) for k, v in vc.head(3).items()]
        assert e["top"][0]["share"] == pytest.approx(vc.iloc[0] / vc.sum())
        assert e["distinct"] == frame[name].nunique()
        assert e["missing"]["count"] == int(frame[name].isna().sum())


def test_datetime_month_histogram_matches_pandas(mixed):
    frame, kinds = mixed
    e = _col(profile_frame(frame, kinds, "y", "binary", _cfg()), "when")
    by_month = frame["when"].dt.to_period("M").value_counts().sort_index()
    ref = by_month.reindex(pd.period_range(by_month.index.min(), by_month.index.max(), freq="M"), fill_value=0)
    assert e["histogram"]["labels"] == [str(x) for x in ref.index]
    assert e["histogram"]["counts"] == ref.tolist()
    assert e["min"] == str(frame["when"].min()) and e["distinct"] == frame["when"].nunique()


def test_binary_target_balance(mixed):
    frame, kinds = mixed
    t = profile_frame(frame, kinds, "y", "binary", _cfg())["target"]
    vc = frame["y"].value_counts()
    assert {b["value"]: b["count"] for b in t["balance"]} == {str(k): int(v) for k, v in vc.items()}
    assert t["minority_share"] == pytest.approx(vc.min() / len(frame))


def test_regression_target_distribution_and_association():
    rng = np.random.default_rng(5)
    x = rng.normal(size=3000)
    frame = pd.DataFrame({"x": x, "g": rng.choice(list("ab"), 3000), "t": 2 * x + rng.normal(size=3000)})
    p = profile_frame(frame, {}, "t", "regression", _cfg(precision="float64"))
    d = p["target"]["distribution"]
    assert d["mean"] == pytest.approx(frame["t"].mean(), rel=1e-10)
    assert sum(d["histogram"]["counts"]) == 3000
    ta = {a["column"]: a for a in p["target_association"]}
    assert ta["x"]["value"] == pytest.approx(abs(frame["x"].corr(frame["t"], method="spearman")), rel=1e-9)
    assert ta["g"]["metric"] == "correlation_ratio" and ta["g"]["value"] < 0.1


# ------------------------------------------------------------------------------------------------
# correlations and associations
# ------------------------------------------------------------------------------------------------
def test_pearson_matches_pandas_pairwise_complete(mixed):
    frame, kinds = mixed
    p = profile_frame(frame, kinds, "y", "binary", _cfg(precision="float64", sample_rows=0))
    cols = p["correlations"]["columns"]
    ref = frame[cols].replace([np.inf, -np.inf], np.nan).corr()
    np.testing.assert_allclose(np.array(p["correlations"]["pearson"], dtype=float), ref.to_numpy(), atol=1e-9)


def test_spearman_matches_pandas_without_missing_values():
    rng = np.random.default_rng(6)
    x = rng.normal(size=2000)
    frame = pd.DataFrame({"x": x, "x3": x ** 3 + rng.normal(0, 0.5, 2000), "r": rng.integers(0, 9, 2000) * 1.0,
                          "y": rng.integers(0, 2, 2000)})
    p = profile_frame(frame, {}, "y", "binary", _cfg(precision="float64", sample_rows=0))
    ref = frame[["x", "x3", "r"]].corr(method="spearman").to_numpy()
    np.testing.assert_allclose(np.array(p["correlations"]["spearman"], dtype=float), ref, atol=1e-9)


def test_univariate_auc_matches_scikit_learn(mixed):
    from sklearn.metrics import roc_auc_score

    frame, kinds = mixed
    p = profile_frame(frame, kinds, "y", "binary", _cfg(precision="float64", sample_rows=0))
    ok = frame["a"].notna()
    ref = roc_auc_score(frame["y"][ok] == 0, frame["a"][ok])  # the profile scores the minority label
    got = next(a for a in p["target_association"] if a["column"] == "a")["value"]
    assert got == pytest.approx(max(ref, 1 - ref), rel=1e-7)


def test_cramers_v_matches_scipy():
    from scipy.stats.contingency import association

    table = np.array([[30, 10, 5], [8, 40, 12], [2, 9, 25], [0, 0, 0]])
    assert cramers_v(table) == pytest.approx(association(table[:3], method="cramer"), rel=1e-12)
    assert cramers_v(np.array([[5, 0], [7, 0]])) is None  # one non-empty column: undefined


def test_association_matrix_is_cramers_v_of_the_crosstab(mixed):
    frame, kinds = mixed
    p = profile_frame(frame, kinds, "y", "binary", _cfg(sample_rows=0))
    a = p["associations"]
    assert a["columns"] == ["cat", "lvl", "y"]
    i, j = a["columns"].index("cat"), a["columns"].index("lvl")
    ref = cramers_v(pd.crosstab(frame["cat"], frame["lvl"]).to_numpy())
    assert a["cramers_v"][i][j] == pytest.approx(ref, rel=1e-6)
    assert a["cramers_v"][i][i] == 1.0


# ------------------------------------------------------------------------------------------------
# duplicates and warnings
# ------------------------------------------------------------------------------------------------
def test_duplicate_rows_match_pandas():
    rng = np.random.default_rng(8)
    base = pd.DataFrame({"x": rng.integers(0, 3, 400) * 1.0, "s": rng.choice(["a", "b"], 400),
                         "t": rng.choice([1.5, np.nan], 400), "y": rng.integers(0, 2, 400)})
    frame = pd.concat([base, base.iloc[:37]], ignore_index=True)
    frame.loc[5, "x"] = -0.0  # equal to 0.0 for pandas too
    p = profile_frame(frame, {"s": "categorical"}, "y", "binary", _cfg())
    assert p["overview"]["duplicate_rows"] == int(frame.duplicated().sum()) > 37


def test_no_duplicates_when_a_column_is_unique():
    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"u": np.arange(500.0), "s": rng.choice(["a", "b"], 500), "y": rng.integers(0, 2, 500)})
    assert profile_frame(frame, {}, "y", "binary", _cfg())["overview"]["duplicate_rows"] == 0


@pytest.fixture(scope="module")
def clean_frame():
    rng = np.random.default_rng(10)
    n = 2000
    return pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n), "c": rng.choice(list("abcd"), n),
                         "y": rng.integers(0, 2, n)})


def test_clean_data_has_no_warnings(clean_frame):
    assert profile_frame(clean_frame, {}, "y", "binary", _cfg())["warnings"] == []


def test_warning_constant(clean_frame):
    f = clean_frame.assign(k=7.0, s="same")
    assert _warned(profile_frame(f, {}, "y", "binary", _cfg()), "constant") == {"k", "s"}


def test_warning_near_constant(clean_frame):
    n = len(clean_frame)
    f = clean_frame.assign(nk=np.r_[np.zeros(n - 10), np.ones(10)], ns=["a"] * (n - 5) + ["b"] * 5)
    assert _warned(profile_frame(f, {}, "y", "binary", _cfg()), "near_constant") == {"nk", "ns"}


def test_warning_high_cardinality(clean_frame):
    f = clean_frame.assign(h=[f"id{i % 300}" for i in range(len(clean_frame))])
    assert _warned(profile_frame(f, {}, "y", "binary", _cfg(high_cardinality=100)), "high_cardinality") == {"h"}


def test_warning_heavy_missing(clean_frame):
    f = clean_frame.copy()
    f.loc[: int(0.4 * len(f)), "x"] = np.nan
    assert _warned(profile_frame(f, {}, "y", "binary", _cfg()), "heavy_missing") == {"x"}


def test_warning_class_imbalance(clean_frame):
    f = clean_frame.assign(y=(np.arange(len(clean_frame)) % 20 == 0).astype(int))
    p = profile_frame(f, {}, "y", "binary", _cfg())
    assert _warned(p, "imbalance") == {"y"}
    assert p["target"]["minority_ratio"] == pytest.approx(100 / 1900)


def test_warning_leakage_numeric_and_categorical(clean_frame):
    rng = np.random.default_rng(11)
    y = clean_frame["y"].to_numpy()
    f = clean_frame.assign(leak_num=y * 10 + rng.normal(0, 1, len(y)),
                           leak_cat=np.where(y == 1, "approved", "declined"))
    p = profile_frame(f, {}, "y", "binary", _cfg())
    assert _warned(p, "leakage") == {"leak_num", "leak_cat"}


def test_warning_leakage_regression(clean_frame):
    f = clean_frame.assign(t=clean_frame["x"] * 3 + 1, y=None).drop(columns="y")
    p = profile_frame(f, {}, "t", "regression", _cfg())
    assert _warned(p, "leakage") == {"x"}


def test_warning_leakage_regression_categorical():
    rng = np.random.default_rng(12)
    g = rng.choice(["a", "b", "c"], 3000)
    t = pd.Series(g).map({"a": 1.0, "b": 5.0, "c": 9.0}).to_numpy() + rng.normal(0, 0.05, 3000)
    p = profile_frame(pd.DataFrame({"g": g, "x": rng.normal(size=3000), "t": t}), {}, "t", "regression", _cfg())
    assert _warned(p, "leakage") == {"g"}


def test_unique_categories_are_not_leakage(clean_frame):
    f = clean_frame.assign(rowid=[f"r{i}" for i in range(len(clean_frame))])
    assert "rowid" not in _warned(profile_frame(f, {}, "y", "binary", _cfg()), "leakage")


# ------------------------------------------------------------------------------------------------
# output: JSON, determinism, HTML
# ------------------------------------------------------------------------------------------------
def test_json_is_strict_and_deterministic(mixed):
    frame, kinds = mixed
    a = profile_frame(frame, kinds, "y", "binary", _cfg(sample_rows=1000), seed=3)
    b = profile_frame(frame, kinds, "y", "binary", ProfileConfig(sample_rows=1000, threads=2), seed=3)
    json.dumps(a, allow_nan=False)  # NaN / inf became null
    assert dumps_json(a) == dumps_json(b)
    assert render_html(a) == render_html(b)


def test_html_is_self_contained_and_escaped(mixed):
    frame, kinds = mixed
    f = frame.rename(columns={"cat": "<script>alert('x')</script>"})
    f["<script>alert('x')</script>"] = f["<script>alert('x')</script>"].replace("red", "<b>red</b>")
    kinds = {**kinds, "<script>alert('x')</script>": "categorical"}
    page = render_html(profile_frame(f, kinds, "y", "binary", _cfg()))
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<script|<link|<img|<iframe|src=|@import|url\(", page)
    assert page.count("<svg") >= len(frame.columns) + 3  # a chart per column, heatmaps, target
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page and "&lt;b&gt;red&lt;/b&gt;" in page


def test_stage_writes_profile_and_report(tmp_path, mixed):
    from engine.backend import cpu_backend
    from engine.config import compose
    from engine.data.profiling import stage
    from engine.pipeline import RunContext
    from engine.registry.manifest import Manifest

    frame, kinds = mixed
    cfg = compose(["backend=cpu", "tracking=off", "profile.bins=8"])
    ctx = RunContext(cfg=cfg, run_id="r", run_dir=tmp_path, backend=cpu_backend(), manifest=Manifest("r", tmp_path))
    ctx.state.update(frame=frame, target="y", task="binary", kinds=kinds)
    stage(ctx)
    prof = json.loads((tmp_path / "profile.json").read_text())
    assert prof == ctx.state["profile"] and len(_col(prof, "a")["histogram"]["counts"]) == 8
    assert Path(ctx.state["report_html"]) == tmp_path / "profile.html" and (tmp_path / "profile.html").is_file()
    assert {f["path"] for f in ctx.manifest["files"]} == {"profile.json", "profile.html"}
    assert ctx.metrics["profile.rows"] == len(frame) and ctx.metrics["profile.columns"] == frame.shape[1]
    assert "profile.warnings" in ctx.metrics and "profile.duplicate_rows" in ctx.metrics


def test_text_and_id_columns(clean_frame):
    n = len(clean_frame)
    f = clean_frame.assign(note=["ok" if i % 3 else "needs review" for i in range(n)], key=np.arange(n) + 100)
    p = profile_frame(f, {"note": "text", "key": "id"}, "y", "binary", _cfg())
    assert _col(p, "note")["length"] == {"min": 2, "mean": pytest.approx((2 * (n - 667) + 12 * 667) / n), "max": 12}
    assert _col(p, "key")["distinct"] == n and _col(p, "key")["kind"] == "id"
    assert "key" not in {w["column"] for w in p["warnings"]}


def test_empty_frame_is_refused(clean_frame):
    from engine.errors import DataError

    with pytest.raises(DataError, match="no rows"):
        profile_frame(clean_frame.iloc[:0], {}, "y", "binary", _cfg())


def test_missing_target_names_the_column(clean_frame):
    from engine.errors import DataError

    with pytest.raises(DataError, match="'nope'"):
        profile_frame(clean_frame, {}, "nope", "binary", _cfg())


# ------------------------------------------------------------------------------------------------
# real data
# ------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not CREDIT.is_file(), reason=f"{CREDIT} is not present")
def test_credit_data_profile():
    frame = pd.read_csv(CREDIT)
    kinds = {c: "numeric" if pd.api.types.is_numeric_dtype(frame[c]) else "categorical" for c in frame.columns}
    p = profile_frame(frame, kinds, "Status", "binary", _cfg())
    assert p["overview"]["rows"] == 4454 and p["overview"]["columns"] == 14
    assert {b["value"]: b["count"] for b in p["target"]["balance"]} == {"good": 3200, "bad": 1254}
    missing = {c["name"]: c["missing"]["count"] for c in p["columns"]}
    assert {k: missing[k] for k in ("Income", "Assets", "Debt", "Home", "Job", "Marital")} == {
        "Income": 381, "Assets": 47, "Debt": 18, "Home": 6, "Job": 2, "Marital": 1}
    assert _col(p, "Age")["mean"] == pytest.approx(frame["Age"].mean(), rel=1e-6)
    assert p["overview"]["duplicate_rows"] == int(frame.duplicated().sum())
    assert "leakage" not in {w["type"] for w in p["warnings"]}
    page = render_html(p)
    assert "Seniority" in page and "http" not in page
