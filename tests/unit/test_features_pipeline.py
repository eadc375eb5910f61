"""FeaturePipeline as a whole: leakage, persistence, Dask and runtime parity, apply-time inputs, report."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.errors import ConfigError, DataError
from engine.features import FeaturePipeline, FeatureRuntime

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def credit_csv() -> Path:
    path = REPO.parent / "shared" / "data" / "credit_data.csv"
    if not path.is_file():
        pytest.skip(f"credit data not found at {path} (expected ../shared/data relative to the repository root)")
    return path


def mixed_frame(n=600, seed=0) -> tuple[pd.DataFrame, np.ndarray]:
    """Every kind of column the pipeline handles, with missing values everywhere."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(8, 1, n)
    income[rng.random(n) < 0.1] = np.nan
    debt = rng.gamma(2, 500, n)
    debt[rng.random(n) < 0.05] = np.nan
    home = rng.choice(["rent", "owner", "parents", "other"], n, p=[0.5, 0.3, 0.15, 0.05]).astype(object)
    home[rng.random(n) < 0.05] = None
    city = np.array([f"city_{i}" for i in rng.integers(0, 60, n)], dtype=object)
    merchant = np.array([f"m{i:05d}" for i in rng.integers(0, 5000, n)], dtype=object)
    when = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365 * 86400, n), unit="s")
    when = pd.Series(when)
    when[rng.random(n) < 0.05] = pd.NaT
    df = pd.DataFrame({
        "income": income, "debt": debt, "age": rng.integers(18, 80, n), "home": home, "city": city,
        "merchant": pd.Series(merchant, dtype="str"), "when": when, "flag": rng.random(n) < 0.3,
    })
    logit = 0.8 * (home == "rent") - 0.0001 * np.nan_to_num(income, nan=3000) + rng.normal(size=n)
    y = (logit > np.median(logit)).astype(float)
    return df, y


def mixed_pipeline(**kw) -> FeaturePipeline:
    cfg = dict(encoders={"merchant": "hashing", "city": "target"}, hashing_buckets=8,
               derive=[{"name": "dti", "op": "ratio", "a": "debt", "b": "income"},
                       {"name": "gap", "op": "difference", "a": "income", "b": "debt"}])
    cfg.update(kw)
    return FeaturePipeline(**cfg)


def auc(score: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula, ties sharing their average rank."""
    _, inv, counts = np.unique(score, return_inverse=True, return_counts=True)
    r = (np.cumsum(counts) - (counts - 1) / 2.0)[inv]
    pos = y == 1
    return float((r[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


# ----------------------------------------------------------------------------------- leakage
def test_target_encoding_does_not_leak_the_target_into_training_rows():
    rng = np.random.default_rng(7)
    n = 4000
    noise = np.array([f"k{i}" for i in rng.integers(0, n // 2, n)], dtype=object)  # ~2 rows per level
    y = rng.integers(0, 2, n).astype(float)  # independent of the column
    df = pd.DataFrame({"noise": noise})
    fp = FeaturePipeline(encoders={"noise": "target"}, target_smoothing=1.0)
    out_of_fold = fp.fit_transform(df, y)[:, 0]
    in_sample = fp.transform(df)[:, 0]  # the full-train encoding applied to the same rows
    assert abs(auc(out_of_fold, y) - 0.5) < 0.05
    assert auc(in_sample, y) > 0.75  # what a leaking encoder would hand the model


# ------------------------------------------------------------------------------- persistence
def test_save_and_load_give_bit_identical_features(tmp_path):
    df, y = mixed_frame()
    fp = mixed_pipeline(reduce="pca", n_components=6)
    fp.fit(df, y)
    before = fp.transform(df)
    fp.save(tmp_path / "features")
    again = FeaturePipeline.load(tmp_path / "features")
    after = again.transform(df)
    assert after.dtype == np.float32 and after.shape == (len(df), 6)
    assert before.tobytes(order="F") == np.asfortranarray(after).tobytes(order="F")
    assert again.feature_names_ == fp.feature_names_ and again.report() == fp.report()


def test_saved_artifact_is_json_and_npz_without_pickle(tmp_path):
    df, y = mixed_frame(n=200)
    mixed_pipeline().fit(df, y).save(tmp_path)
    spec = json.loads((tmp_path / "features.json").read_text())
    assert spec["format"] == "trident.features" and spec["format_version"] == 1
    with np.load(tmp_path / "features.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def test_loading_a_newer_format_version_fails_clearly(tmp_path):
    df, y = mixed_frame(n=200)
    mixed_pipeline().fit(df, y).save(tmp_path)
    spec = json.loads((tmp_path / "features.json").read_text())
    spec["format_version"] = 99
    (tmp_path / "features.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="format_version 99"):
        FeatureRuntime.load(str(tmp_path))


# -------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_dask_partitions_give_the_pandas_result(scheduler):
    import dask
    import dask.dataframe as dd

    df, y = mixed_frame()
    fp = mixed_pipeline().fit(df, y)
    ddf = dd.from_pandas(df, npartitions=3)
    with dask.config.set(scheduler=scheduler):
        got = fp.transform_dask(ddf).compute()
    np.testing.assert_array_equal(got, fp.transform(df))


def test_runtime_on_numpy_arrays_equals_the_pipeline(tmp_path):
    df, y = mixed_frame()
    fp = mixed_pipeline().fit(df, y)
    fp.save(tmp_path)
    runtime = FeatureRuntime.load(str(tmp_path))  # NumPy-only apply, no Numba hasher
    cols = {}
    for c in fp.input_columns_:
        s = df[c]
        kind = fp.input_kinds_[c]
        if kind == "numeric":
            cols[c] = s.to_numpy(dtype=np.float64)
        elif kind == "categorical":
            cols[c] = np.array([None if pd.isna(v) else v for v in s], dtype=object)
        else:
            cols[c] = s.to_numpy(dtype="datetime64[ns]")
    np.testing.assert_array_equal(runtime.transform(cols), fp.transform(df))


def test_runtime_accepts_bytes_and_iso_strings_as_served_requests_send_them(tmp_path):
    df, y = mixed_frame(n=300)
    fp = mixed_pipeline().fit(df, y)
    fp.save(tmp_path)
    runtime = FeatureRuntime.load(str(tmp_path))
    cols = {}
    for c in fp.input_columns_:
        s = df[c]
        kind = fp.input_kinds_[c]
        if kind == "numeric":
            cols[c] = s.to_numpy(dtype=np.float64).reshape(-1, 1)  # Triton sends (rows, 1)
        elif kind == "categorical":
            cols[c] = np.array([b"" if pd.isna(v) else str(v).encode() for v in s], dtype=object)
        else:
            cols[c] = np.array(["" if pd.isna(v) else v.isoformat() for v in s], dtype=object)
    np.testing.assert_array_equal(runtime.transform(cols), fp.transform(df))


def test_hashing_from_arrow_buffers_equals_hashing_the_dictionary():
    df, y = mixed_frame()
    fp = mixed_pipeline().fit(df, y)
    arrow = fp.transform(df)  # "merchant" is a pyarrow-backed str column: hashed from its buffers
    as_objects = fp.transform(df.assign(merchant=df["merchant"].astype(object)))
    np.testing.assert_array_equal(arrow, as_objects)


def test_fit_transform_equals_transform_without_target_encoding():
    df, y = mixed_frame()
    fp = mixed_pipeline(encoders={"merchant": "hashing", "city": "frequency"})
    np.testing.assert_array_equal(fp.fit_transform(df, y), fp.transform(df))


# ----------------------------------------------------------------------------- apply-time inputs
def fitted_small(**kw):
    df = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0], "c": ["a", "b", "a", None],
                       "d": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"])})
    cfg = dict(clip="none", scaler="none", correlation_threshold=None, rare_min_share=0.0, date_parts=["month"])
    cfg.update(kw)
    fp = FeaturePipeline(**cfg)
    fp.fit(df)
    return fp, df


def test_unseen_categories_go_to_other_without_error():
    fp, df = fitted_small(drop_constant=False)
    X = fp.transform(df.assign(c=["zzz", "a", "yyy", "b"]))
    other = X[:, fp.feature_names_.index("c=__other__")]
    np.testing.assert_array_equal(other, [1, 0, 1, 0])


def test_unseen_categories_get_no_level_when_other_was_constant_in_training():
    fp, df = fitted_small()
    assert "c=__other__" not in fp.feature_names_  # no rare level in training: constant 0, dropped
    X = fp.transform(df.assign(c=["zzz", "a", "yyy", "b"]))
    onehot = [i for i, nm in enumerate(fp.feature_names_) if nm.startswith("c=")]
    np.testing.assert_array_equal(X[:, onehot].sum(axis=1), [0, 1, 0, 1])


def test_all_missing_numeric_column_is_imputed():
    fp, df = fitted_small()
    X = fp.transform(df.assign(x=np.nan))
    np.testing.assert_array_equal(X[:, fp.feature_names_.index("x")], [2, 2, 2, 2])
    np.testing.assert_array_equal(X[:, fp.feature_names_.index("x__missing")], [1, 1, 1, 1])


def test_all_missing_categorical_and_date_columns_are_imputed():
    fp, df = fitted_small()
    X = fp.transform(df.assign(c=None, d=pd.NaT))
    np.testing.assert_array_equal(X[:, fp.feature_names_.index("c=__missing__")], [1, 1, 1, 1])
    np.testing.assert_array_equal(X[:, fp.feature_names_.index("d__month")], [2.5] * 4)


def test_strings_in_a_numeric_column_name_the_column():
    fp, df = fitted_small()
    with pytest.raises(DataError, match=r"column 'x': expected numeric values.*got strings"):
        fp.transform(df.assign(x=["1", "2", "3", "4"]))


def test_numbers_in_a_datetime_column_name_the_column():
    fp, df = fitted_small()
    with pytest.raises(DataError, match=r"column 'd': expected datetime64 values or ISO-8601 strings"):
        fp.transform(df.assign(d=[1.0, 2.0, 3.0, 4.0]))


def test_unparseable_dates_name_the_value():
    fp, df = fitted_small()
    with pytest.raises(DataError, match=r"column 'd'.*could not parse 'soon'"):
        fp.transform(df.assign(d=["2024-01-01", "soon", "", None]))


def test_a_missing_input_column_is_named():
    fp, df = fitted_small()
    with pytest.raises(DataError, match=r"missing input column 'c'"):
        fp.transform(df.drop(columns="c"))


def test_runtime_rejects_columns_of_different_lengths():
    from engine.features.runtime import FeatureInputError

    fp, df = fitted_small()
    cols = {"x": np.array([1.0, 2.0]), "c": np.array(["a"], dtype=object), "d": np.array(["2024-01-01"] * 2)}
    with pytest.raises(FeatureInputError, match="different lengths"):
        fp.runtime_.transform(cols)


# ---------------------------------------------------------------------------- columns and report
def test_excluded_sensitive_columns_never_enter_and_are_reported():
    df, y = mixed_frame()
    fp = mixed_pipeline(derive=[{"name": "age_ratio", "op": "ratio", "a": "age", "b": "income"}])
    fp.fit(df, y, exclude=["age", "home"])
    assert "age" not in fp.input_columns_ and "home" not in fp.input_columns_
    assert not any(name.startswith(("age", "home")) for name in fp.feature_names_)
    rep = fp.report()
    assert rep["columns"]["age"]["fate"] == "dropped" and rep["columns"]["age"]["reason"] == "sensitive"
    assert rep["derived"]["age_ratio"]["fate"] == "dropped"
    assert rep["columns"]["income"]["fate"] == "used"


def test_every_input_column_has_a_fate():
    df, y = mixed_frame()
    df["row_id"] = [f"id-{i}" for i in range(len(df))]
    fp = mixed_pipeline().fit(df, y)
    cols = fp.report()["columns"]
    assert set(cols) == set(df.columns)
    assert cols["row_id"]["reason"] == "id"
    assert all(rec["fate"] in ("used", "dropped") for rec in cols.values())


def test_declared_kinds_override_inference():
    df, y = mixed_frame()
    fp = mixed_pipeline().fit(df, y, kinds={"age": "categorical", "city": "text"})
    assert fp.input_kinds_["age"] == "categorical"
    assert fp.report()["columns"]["city"]["reason"] == "text"


def test_derive_with_an_unknown_column_is_a_config_error():
    df, y = mixed_frame(n=100)
    with pytest.raises(ConfigError, match=r"features.derive\[0\].b: column 'nope'"):
        FeaturePipeline(derive=[{"name": "r", "op": "ratio", "a": "income", "b": "nope"}]).fit(df)


def test_unknown_config_key_is_named():
    with pytest.raises(ConfigError, match="features.scalar"):
        FeaturePipeline(scalar="standard").fit(pd.DataFrame({"x": [1.0]}))


def test_clone_follows_the_estimator_contract():
    from sklearn.base import clone

    fp = FeaturePipeline(scaler="robust", hashing_buckets=4)
    twin = clone(fp)
    assert twin.get_params() == fp.get_params() and not hasattr(twin, "runtime_")


def test_default_yaml_matches_the_schema_defaults():
    from omegaconf import OmegaConf

    from engine.features.config import FeaturesConfig, resolve_config

    yaml = OmegaConf.load(REPO / "conf" / "features" / "default.yaml")
    merged = OmegaConf.merge(OmegaConf.structured(FeaturesConfig), yaml)  # validates keys, types, choices
    assert resolve_config(merged) == resolve_config()


def test_composed_run_config_builds_a_pipeline():
    from engine.config import compose

    cfg = compose(["features.scaler=robust", "features.derive=[{name: r, op: ratio, a: a, b: b}]"])
    fp = FeaturePipeline(cfg.features)
    fp.fit(pd.DataFrame({"a": [1.0, 2.0, 4.0], "b": [1.0, 1.0, 2.0]}))
    assert fp.config_.scaler.value == "robust" and "r" in fp.feature_names_


# ------------------------------------------------------------------------------- real data
def logistic_scores(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """Ridge-penalised logistic regression by Newton's method (a small, dependable reference model)."""
    A = np.hstack([np.ones((Xtr.shape[0], 1)), Xtr.astype(np.float64)])
    w = np.zeros(A.shape[1])
    for _ in range(30):
        p = 1.0 / (1.0 + np.exp(-(A @ w)))
        H = A.T @ (A * (p * (1 - p))[:, None]) + l2 * np.eye(A.shape[1])
        w -= np.linalg.solve(H, A.T @ (p - ytr) + l2 * w)
    return np.hstack([np.ones((Xte.shape[0], 1)), Xte.astype(np.float64)]) @ w


def test_credit_data_end_to_end(credit_csv):
    df = pd.read_csv(credit_csv)
    y = (df.pop("Status") == "bad").to_numpy(dtype=float)
    rng = np.random.default_rng(0)
    train = rng.random(len(df)) < 0.7
    fp = FeaturePipeline(derive=[{"name": "debt_to_income", "op": "ratio", "a": "Debt", "b": "Income"}])
    Xtr = fp.fit_transform(df[train], y[train], exclude=["Age", "Marital"])
    Xte = fp.transform(df[~train])
    assert Xtr.dtype == np.float32 and np.isfinite(Xtr).all() and np.isfinite(Xte).all()
    assert "Age" not in fp.input_columns_ and "Marital" not in fp.input_columns_
    assert {"Income__missing", "debt_to_income", "Home=rent", "Job=fixed"} <= set(fp.feature_names_)
    rep = fp.report()["columns"]
    assert rep["Age"]["reason"] == "sensitive" and rep["Income"]["fate"] == "used"
    assert auc(logistic_scores(Xtr, y[train], Xte), y[~train]) > 0.78


def test_string_columns_encoded_in_parallel_threads_give_the_same_features(monkeypatch):
    from engine.features import frame

    df, y = mixed_frame(900, seed=4)
    serial = FeaturePipeline(encoders={"merchant": "hashing"})
    expected = serial.fit_transform(df, y)
    monkeypatch.setattr(frame, "PARALLEL_ROWS", 0)  # every frame takes the threaded path
    threaded = FeaturePipeline(encoders={"merchant": "hashing"})
    np.testing.assert_array_equal(threaded.fit_transform(df, y), expected)
    np.testing.assert_array_equal(threaded.transform(df), serial.transform(df))
    assert threaded.feature_names_ == serial.feature_names_
