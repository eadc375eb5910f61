"""The synthetic credit-default generator: seeded, realistic, learnable, and drifting when asked."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.data.synthetic import COLUMNS, make_credit

N = 20_000


@pytest.fixture(scope="module")
def ref() -> pd.DataFrame:
    return make_credit(N, seed=3)


@pytest.fixture(scope="module")
def later() -> pd.DataFrame:
    return make_credit(N, seed=3, drifted=True)


def test_same_seed_gives_the_same_frame():
    pd.testing.assert_frame_equal(make_credit(2000, seed=7), make_credit(2000, seed=7))


def test_different_seeds_give_different_frames():
    a, b = make_credit(2000, seed=7), make_credit(2000, seed=8)
    assert not a["income"].equals(b["income"])
    assert not a["default"].equals(b["default"])


def test_shape_and_columns(ref):
    assert ref.shape == (N, len(COLUMNS))
    assert list(ref.columns) == COLUMNS


def test_rows_below_one_are_refused():
    with pytest.raises(ValueError, match="rows"):
        make_credit(0)


def test_application_id_is_unique(ref):
    assert ref["application_id"].is_unique
    assert ref["application_id"].notna().all()


def test_dates_span_about_two_years(ref):
    d = ref["application_date"]
    assert pd.api.types.is_datetime64_any_dtype(d)
    assert d.min() >= pd.Timestamp("2023-01-01") and d.max() < pd.Timestamp("2025-01-01")
    assert (d.max() - d.min()).days > 700


def test_numeric_columns_are_about_ten(ref):
    numeric = [c for c in ref.select_dtypes("number").columns if c not in ("application_id", "default")]
    assert 9 <= len(numeric) <= 14
    for col in ("income", "loan_amount", "debt", "age", "employment_years", "credit_history_months",
                "n_open_accounts", "utilisation"):
        assert col in numeric


def test_low_cardinality_categoricals_have_5_to_15_levels(ref):
    for col in ("home_ownership", "purpose", "employment_type", "region"):
        assert isinstance(ref[col].dtype, pd.CategoricalDtype)
        assert 5 <= ref[col].nunique() <= 15, col


def test_high_cardinality_categoricals(ref):
    assert 600 <= ref["employer"].nunique() <= 1000
    assert 400 <= ref["postcode"].nunique() <= 520


def test_default_rate_is_between_15_and_25_percent(ref):
    assert ref["default"].dtype == np.int8
    assert set(np.unique(ref["default"])) == {0, 1}
    assert 0.15 <= ref["default"].mean() <= 0.25


def test_several_columns_have_a_few_percent_missing(ref):
    rates = ref.isna().mean()
    small = rates[(rates > 0.005) & (rates < 0.10)]
    assert len(small) >= 4, rates.to_dict()
    assert rates["default"] == 0 and rates["application_id"] == 0


def test_income_is_missing_more_often_for_the_self_employed(ref):
    miss = ref["income"].isna()
    self_emp = ref["employment_type"] == "self_employed"
    assert miss[self_emp].mean() > 3 * miss[~self_emp].mean()


def test_income_and_debt_have_heavy_upper_tails(ref):
    for col in ("income", "debt"):
        v = ref[col].dropna()
        assert v.max() > 8 * v.quantile(0.5), col
        assert v.skew() > 3, col


def test_title_is_a_strong_proxy_of_gender(ref):
    tab = pd.crosstab(ref["title"], ref["gender"], normalize="index")
    assert tab.loc["Mr", "male"] > 0.99
    assert tab.loc[["Mrs", "Ms", "Miss"], "female"].min() > 0.99
    # share of rows whose gender is the majority gender of their title
    majority = pd.crosstab(ref["title"], ref["gender"]).max(axis=1).sum() / len(ref)
    assert majority > 0.95


def test_a_logistic_model_on_the_numeric_columns_reaches_a_useful_auc(ref):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = ref.drop(columns=["application_id", "application_date", "default"]).select_dtypes("number")
    y = ref["default"].to_numpy()
    cut = int(0.7 * len(y))
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(X.iloc[:cut], y[:cut])
    auc = roc_auc_score(y[cut:], model.predict_proba(X.iloc[cut:])[:, 1])
    assert 0.72 <= auc <= 0.9


def test_young_applicants_default_more_often(ref):
    young = ref["age"] < 25
    assert ref.loc[young, "default"].mean() > ref.loc[~young, "default"].mean() + 0.03


def test_drifted_data_is_later_in_time(ref, later):
    assert later["application_date"].min() > ref["application_date"].max()
    assert not set(later["application_id"]) & set(ref["application_id"])


def test_drifted_data_has_lower_income_and_higher_utilisation(ref, later):
    assert later["income"].median() < 0.9 * ref["income"].median()
    assert later["utilisation"].mean() > ref["utilisation"].mean() + 0.05


def test_drifted_data_brings_new_postcodes(ref, later):
    new = ~later["postcode"].isin(set(ref["postcode"].astype(str)))
    assert new.mean() > 0.2


def test_drifted_data_has_more_missing_income(ref, later):
    assert later["income"].isna().mean() > ref["income"].isna().mean() + 0.05


def test_drifted_data_changes_the_purpose_mix(ref, later):
    a = ref["purpose"].value_counts(normalize=True)
    b = later["purpose"].value_counts(normalize=True)
    assert b["debt_consolidation"] > a["debt_consolidation"] + 0.08


def test_drifted_data_has_a_higher_default_rate(ref, later):
    assert later["default"].mean() > ref["default"].mean() + 0.04
