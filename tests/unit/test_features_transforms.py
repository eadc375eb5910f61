"""Each feature transform against a reference computed by hand on a small frame."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine.features import FeaturePipeline
from engine.features.categorical import fold_ids
from engine.features.runtime import hash_strings


def plain(**kw):
    """A pipeline that only does what the test asks for."""
    base = dict(clip="none", scaler="none", missing_indicators=False, drop_constant=False, drop_duplicates=False,
                correlation_threshold=None, rare_min_share=0.0)
    base.update(kw)
    return FeaturePipeline(**base)


def col(fp, X, name):
    return X[:, fp.feature_names_.index(name)]


# ------------------------------------------------------------------------------------ imputation
def test_median_imputation_and_missing_indicator():
    df = pd.DataFrame({"x": [1.0, 2.0, np.nan, 10.0]})
    fp = plain(missing_indicators=True)
    X = fp.fit_transform(df)
    assert fp.feature_names_ == ["x", "x__missing"]
    np.testing.assert_array_equal(X[:, 0], [1, 2, 2, 10])
    np.testing.assert_array_equal(X[:, 1], [0, 0, 1, 0])


def test_mean_imputation():
    X = plain(impute="mean").fit_transform(pd.DataFrame({"x": [1.0, 2.0, None, 9.0]}))
    np.testing.assert_array_equal(X[:, 0], [1, 2, 4, 9])


def test_most_frequent_imputation():
    X = plain(impute="most_frequent").fit_transform(pd.DataFrame({"x": [3.0, 1, 3, np.nan, 1, 1]}))
    np.testing.assert_array_equal(X[:, 0], [3, 1, 3, 1, 1, 1])


def test_constant_imputation_treats_infinity_as_missing():
    X = plain(impute="constant", fill_value=-1.0).fit_transform(pd.DataFrame({"x": [3.0, np.inf, np.nan, 5.0]}))
    np.testing.assert_array_equal(X[:, 0], [3, -1, -1, 5])


def test_no_indicator_for_a_column_without_missing_values():
    fp = plain(missing_indicators=True)
    fp.fit(pd.DataFrame({"x": [1.0, 2.0], "z": [1.0, None]}))
    assert fp.feature_names_ == ["x", "z", "z__missing"]


# --------------------------------------------------------------------------------------- clipping
def test_quantile_clipping_uses_training_quantiles():
    fp = plain(clip="quantile", clip_quantiles=[0.25, 0.75])
    fp.fit(pd.DataFrame({"x": [0.0, 1, 2, 3, 100]}))  # q25 = 1, q75 = 3 (linear interpolation)
    X = fp.transform(pd.DataFrame({"x": [-50.0, 0, 2, 3, 100, 7]}))
    np.testing.assert_array_equal(X[:, 0], [1, 1, 2, 3, 3, 3])


def test_iqr_clipping():
    fp = plain(clip="iqr", clip_iqr_factor=1.0)
    X = fp.fit_transform(pd.DataFrame({"x": [0.0, 1, 2, 3, 100]}))  # [1 - 2, 3 + 2]
    np.testing.assert_array_equal(X[:, 0], [0, 1, 2, 3, 5])


# ---------------------------------------------------------------------------------------- scaling
def test_standard_scaler_after_imputation():
    X = plain(scaler="standard").fit_transform(pd.DataFrame({"x": [1.0, np.nan, 3.0]}))
    sd = math.sqrt(2 / 3)  # imputed values 1, 2, 3
    np.testing.assert_allclose(X[:, 0], [-1 / sd, 0, 1 / sd], rtol=1e-6)


def test_robust_scaler():
    X = plain(scaler="robust").fit_transform(pd.DataFrame({"x": [1.0, 2, 3, 4, 100]}))
    np.testing.assert_allclose(X[:, 0], [-1, -0.5, 0, 0.5, 48.5], rtol=1e-7)


def test_scaler_with_zero_spread_divides_by_one():
    X = plain(scaler="standard").fit_transform(pd.DataFrame({"x": [4.0, 4.0, 4.0]}))
    np.testing.assert_array_equal(X[:, 0], [0, 0, 0])


# ---------------------------------------------------------------------------------------- one-hot
def test_onehot_groups_rare_and_unseen_levels_into_other():
    train = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 3 + ["c", None]})
    fp = plain(rare_min_share=0.15)
    fp.fit(train)
    assert fp.feature_names_ == ["c=a", "c=b", "c=__other__"]
    X = fp.transform(pd.DataFrame({"c": ["a", "b", "c", "never-seen", None]}))
    np.testing.assert_array_equal(X, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]])


def test_onehot_missing_is_its_own_level():
    fp = plain()
    X = fp.fit_transform(pd.DataFrame({"c": ["a", "a", None, ""]}))  # "" is missing too
    assert fp.feature_names_ == ["c=__missing__", "c=a", "c=__other__"]
    np.testing.assert_array_equal(X[:, :2], [[0, 1], [0, 1], [1, 0], [1, 0]])


def test_onehot_caps_the_number_of_levels():
    train = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 3 + ["c"] * 2})
    fp = plain(onehot_max_levels=2, encoders={"c": "onehot"})
    X = fp.fit_transform(train)
    assert fp.feature_names_ == ["c=a", "c=b", "c=__other__"]
    np.testing.assert_array_equal(X[-2:], [[0, 0, 1], [0, 0, 1]])


def test_onehot_most_frequent_imputation():
    fp = plain(impute_categorical="most_frequent")
    X = fp.fit_transform(pd.DataFrame({"c": ["x", "y", "y", None]}))
    assert fp.feature_names_ == ["c=y", "c=x", "c=__other__"]
    np.testing.assert_array_equal(X[3], [1, 0, 0])


def test_integer_categories_compare_as_text():
    fp = plain()
    fp.fit(pd.DataFrame({"c": [1, 2, 2]}), kinds={"c": "categorical"})
    X = fp.transform({"c": np.array(["2", "1", "3"], dtype=object)})
    np.testing.assert_array_equal(col(fp, X, "c=2"), [1, 0, 0])
    np.testing.assert_array_equal(col(fp, X, "c=1"), [0, 1, 0])


# ---------------------------------------------------------------------------------------- hashing
def test_hashing_encoder_sets_the_bucket_of_each_value():
    values = ["alpha", "beta", "gamma", "delta", "épsilon", "日本"]
    fp = plain(encoders={"c": "hashing"}, hashing_buckets=8, seed=3)
    X = fp.fit_transform(pd.DataFrame({"c": values}))
    expected = hash_strings(values, seed=3) % 8
    assert fp.feature_names_ == [f"c__hash{b}" for b in range(8)]
    np.testing.assert_array_equal(X.argmax(axis=1), expected)
    np.testing.assert_array_equal(X.sum(axis=1), np.ones(len(values)))


def test_hashing_encoder_hashes_missing_as_the_fill_value():
    fp = plain(encoders={"c": "hashing"}, hashing_buckets=16)
    X = fp.fit_transform(pd.DataFrame({"c": ["a", None, "b"]}))
    assert X[1].argmax() == hash_strings(["__missing__"], seed=0)[0] % 16


# -------------------------------------------------------------------------------------- frequency
def test_frequency_encoding_and_unseen_level():
    fp = plain(encoders={"c": "frequency"})
    fp.fit(pd.DataFrame({"c": ["a", "a", "a", "b"]}))
    X = fp.transform(pd.DataFrame({"c": ["a", "b", "zzz"]}))
    assert fp.feature_names_ == ["c__freq"]
    np.testing.assert_array_equal(X[:, 0], np.float32([0.75, 0.25, 0.0]))


# ----------------------------------------------------------------------------------------- target
def test_target_encoding_applied_to_new_rows_uses_all_training_rows():
    train = pd.DataFrame({"c": ["a", "a", "a", "b"]})
    y = np.array([1.0, 1.0, 0.0, 0.0])
    fp = plain(encoders={"c": "target"}, target_smoothing=1.0)
    fp.fit(train, y)
    X = fp.transform(pd.DataFrame({"c": ["a", "b", "new"]}))
    # prior 0.5; a: (2 + 0.5) / (3 + 1); b: (0 + 0.5) / (1 + 1); unseen: prior
    np.testing.assert_array_equal(X[:, 0], np.float32([0.625, 0.25, 0.5]))


def test_target_encoding_out_of_fold_on_training_rows():
    rng = np.random.default_rng(0)
    c = np.array(list("aabbbcab"))
    y = rng.integers(0, 2, c.size).astype(float)
    m, k = 2.0, 3
    fp = plain(encoders={"c": "target"}, target_smoothing=m, target_folds=k, seed=5)
    X = fp.fit_transform(pd.DataFrame({"c": c}), y)
    folds = fold_ids(c.size, k, 5)
    expected = []
    for i in range(c.size):
        other = folds != folds[i]
        prior = y[other].mean()
        same = other & (c == c[i])
        expected.append((y[same].sum() + m * prior) / (same.sum() + m))
    np.testing.assert_allclose(X[:, 0], np.float32(expected), rtol=1e-6)


def test_target_encoding_without_target_falls_back_to_frequency():
    fp = plain(encoders={"c": "target"})
    fp.fit(pd.DataFrame({"c": ["a", "b", "b", "b"]}))
    assert fp.feature_names_ == ["c__freq"]
    assert any("frequency encoding instead of target" in n for n in fp.report()["notes"])


def test_encoder_chosen_by_cardinality():
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({"low": rng.choice(list("abc"), n), "mid": rng.integers(0, 30, n).astype(str),
                       "high": rng.integers(0, 300, n).astype(str)})
    fp = plain(onehot_max_levels=5, high_cardinality=50, medium_cardinality_encoder="frequency",
               high_cardinality_encoder="hashing", hashing_buckets=4)
    fp.fit(df)
    cols = fp.report()["columns"]
    assert (cols["low"]["encoder"], cols["mid"]["encoder"], cols["high"]["encoder"]) == ("onehot", "frequency",
                                                                                         "hashing")


# ------------------------------------------------------------------------------------------ dates
def test_date_parts_by_hand():
    ts = pd.to_datetime(["2024-02-29 13:45:00", "1969-12-31 23:00:00", "2023-01-01 00:00:00"])
    fp = plain(date_parts=["year", "month", "day", "dayofweek", "dayofyear", "hour", "epoch_days"])
    X = fp.fit_transform(pd.DataFrame({"d": ts}))
    got = {p: list(col(fp, X, f"d__{p}")) for p in ("year", "month", "day", "dayofweek", "dayofyear", "hour",
                                                   "epoch_days")}
    assert got == {
        "year": [2024, 1969, 2023], "month": [2, 12, 1], "day": [29, 31, 1],
        "dayofweek": [3, 2, 6],  # Thursday, Wednesday, Sunday (Monday = 0)
        "dayofyear": [60, 365, 1], "hour": [13, 23, 0], "epoch_days": [19782, -1, 19358],
    }


def test_hour_only_when_some_training_value_has_a_time():
    fp = plain()
    fp.fit(pd.DataFrame({"d": pd.to_datetime(["2024-01-01", "2024-03-05"])}))
    assert "d__hour" not in fp.feature_names_
    assert "d__year" in fp.feature_names_


def test_missing_date_parts_are_imputed():
    fp = plain(missing_indicators=True, date_parts=["month"])
    X = fp.fit_transform(pd.DataFrame({"d": pd.to_datetime(["2024-01-10", None, "2024-03-05", "2024-07-01"])}))
    np.testing.assert_array_equal(col(fp, X, "d__month"), [1, 3, 3, 7])
    np.testing.assert_array_equal(col(fp, X, "d__missing"), [0, 1, 0, 0])


# ---------------------------------------------------------------------------------------- derived
def test_ratio_and_difference_features():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [2.0, 0.0, 4.0]})
    fp = plain(derive=[{"name": "r", "op": "ratio", "a": "a", "b": "b"},
                       {"name": "d", "op": "difference", "a": "a", "b": "b"}])
    X = fp.fit_transform(df)
    np.testing.assert_array_equal(col(fp, X, "r"), [0.5, 0.625, 0.75])  # 2 / 0 is missing -> median
    np.testing.assert_array_equal(col(fp, X, "d"), [-1, 2, -1])


# -------------------------------------------------------------------------------------- selection
def _selection_frame(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "const": 5.0, "copy": x.copy(), "near": 2 * x + 1e-3 * rng.normal(size=n),
                         "other": rng.normal(size=n)})


def test_constant_duplicate_and_correlated_features_are_dropped():
    fp = FeaturePipeline(clip="none", correlation_threshold=0.95)
    fp.fit(_selection_frame())
    assert fp.feature_names_ == ["x", "other"]
    dropped = fp.report()["dropped_features"]
    assert dropped["const"]["reason"] == "constant"
    assert dropped["copy"] == {"reason": "duplicate", "detail": "duplicate of x"}
    assert dropped["near"]["reason"] == "correlated"
    assert fp.report()["columns"]["const"]["fate"] == "dropped"


def test_correlation_threshold_off_keeps_correlated_features():
    fp = FeaturePipeline(clip="none", correlation_threshold=None)
    fp.fit(_selection_frame())
    assert "near" in fp.feature_names_ and "copy" not in fp.feature_names_


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_feature_constant_on_the_sample_only_is_kept(seed):
    c = np.array(["common"] * 200, dtype=object)
    c[137] = "rare"
    fp = plain(drop_constant=True, sample_rows=10, seed=seed)
    fp.fit(pd.DataFrame({"c": c}))
    assert "c=rare" in fp.feature_names_


# ---------------------------------------------------------------------------------------- reduce
def test_pca_matches_the_svd_of_the_centred_data_up_to_sign():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    df = pd.DataFrame(A, columns=[f"f{i}" for i in range(5)])
    fp = plain(reduce="pca", n_components=3)
    X = fp.fit_transform(df)
    A32 = A.astype(np.float32).astype(np.float64)
    centred = A32 - A32.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    assert fp.feature_names_ == ["pca0", "pca1", "pca2"]
    for i in range(3):
        ref = centred @ vt[i]
        s = np.sign(X[:, i] @ ref)
        np.testing.assert_allclose(X[:, i], s * ref, rtol=1e-4, atol=1e-4)
    ratio = fp.report()["reduce"]["explained_variance_ratio"]
    sv = np.linalg.svd(centred, compute_uv=False) ** 2
    np.testing.assert_allclose(ratio, sv[:3] / sv.sum(), rtol=1e-6)


def test_truncated_svd_does_not_centre():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(200, 4)) + 3.0
    fp = plain(reduce="svd", n_components=2)
    X = fp.fit_transform(pd.DataFrame(A, columns=list("abcd")))
    A32 = A.astype(np.float32).astype(np.float64)
    _, _, vt = np.linalg.svd(A32, full_matrices=False)
    for i in range(2):
        ref = A32 @ vt[i]
        np.testing.assert_allclose(np.abs(X[:, i]), np.abs(ref), rtol=1e-4)
