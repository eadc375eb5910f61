"""The data contract: inference, JSON round trip, dataset-level failures and row-level quarantine."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from engine.data import kinds as K
from engine.data.contract import FORMAT_VERSION, Contract, check, infer_contract
from engine.data.quarantine import REASON, ROW, Reasons
from engine.data.synthetic import make_credit
from engine.errors import DataError


def training() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [1, 2, 3, 4, 5, 6],
        "age": [25, 40, 33, 58, 61, 47],
        "income": [30.0, None, 55.5, 80.0, 42.0, 61.0],
        "home": ["rent", "own", "rent", "own", "other", "rent"],
        "opened": ["2024-01-02", "2024-02-03", "2024-03-04", "2024-04-05", "2024-05-06", "2024-06-07"],
        "status": ["good", "bad", "good", "good", "bad", "good"],
    })


def contract_of(frame: pd.DataFrame, **kw) -> Contract:
    kinds = K.infer_kinds(frame, target="status", id_column="id")
    return infer_contract(frame, kinds, "status", "id", **kw)


@pytest.fixture(scope="module")
def credit():
    frame = make_credit(5000, seed=2)
    kinds = K.infer_kinds(frame, target="default", id_column="application_id", date_column="application_date")
    return frame, infer_contract(frame, kinds, "default", "application_id")


# ---- inference -------------------------------------------------------------------------------
def test_contract_records_kinds(credit):
    _, c = credit
    assert c.kinds["application_id"] == "id" and c.kinds["default"] == "target"
    assert c.kinds["income"] == "numeric" and c.kinds["region"] == "categorical"
    assert c.kinds["application_date"] == "datetime"


def test_numeric_range_covers_the_data_and_does_not_cross_zero(credit):
    frame, c = credit
    col = c.columns["income"]
    assert col.observed_min == frame["income"].min() and col.observed_max == frame["income"].max()
    assert col.min == 0 and col.max > col.observed_max


def test_low_cardinality_categoricals_get_an_allow_list(credit):
    frame, c = credit
    assert c.columns["region"].categories == sorted(frame["region"].dropna().astype(str).unique())


def test_high_cardinality_categoricals_get_no_allow_list(credit):
    _, c = credit
    assert c.columns["employer"].categories is None and c.columns["employer"].n_categories > 50
    assert c.columns["postcode"].categories is None


def test_null_rates_and_margin(credit):
    frame, c = credit
    col = c.columns["income"]
    assert col.nullable and col.null_rate == pytest.approx(frame["income"].isna().mean(), abs=1e-6)
    assert col.max_null_rate == pytest.approx(col.null_rate + 0.05, abs=1e-6)
    assert not c.columns["age"].nullable


def test_declared_id_must_be_unique(credit):
    _, c = credit
    assert c.columns["application_id"].unique and not c.columns["application_id"].nullable


def test_target_labels_and_positive_label():
    c = contract_of(training())
    assert c.target.positive_label == "bad" and c.columns["status"].categories == ["good", "bad"]


def test_regression_target_is_float64():
    frame = training()
    c = infer_contract(frame, K.infer_kinds(frame, target="age"), "age", task="regression")
    r = check(c, frame)
    assert c.task == "regression" and c.target.positive_label is None
    assert r.y.dtype == np.float64 and r.y.tolist() == [25, 40, 33, 58, 61, 47]


def test_contract_json_round_trip(tmp_path, credit):
    _, c = credit
    c.save(tmp_path / "contract.json")
    back = Contract.load(tmp_path / "contract.json")
    assert back.to_dict() == json.loads((tmp_path / "contract.json").read_text())
    assert back.to_dict()["format_version"] == FORMAT_VERSION
    assert back.kinds == c.kinds


def test_contract_of_another_format_version_is_refused(tmp_path, credit):
    _, c = credit
    d = c.to_dict()
    d["format_version"] = 99
    (tmp_path / "c.json").write_text(json.dumps(d))
    with pytest.raises(DataError, match="format_version 99 is not supported"):
        Contract.load(tmp_path / "c.json")


def test_missing_contract_file_is_named(tmp_path):
    with pytest.raises(DataError, match="validation.contract: file '.*nope.json' does not exist"):
        Contract.load(tmp_path / "nope.json")


# ---- the training data passes its own contract -----------------------------------------------
def test_data_passes_its_own_contract(credit):
    frame, c = credit
    r = check(c, frame)
    assert r.rows_quarantined == 0 and r.rows_accepted == len(frame) == r.rows_in
    assert r.y.dtype == np.int8 and np.array_equal(r.y, frame["default"].to_numpy())


def test_accepted_columns_have_their_kinds_representation():
    r = check(contract_of(training()), training())
    assert r.accepted["age"].dtype == np.float64
    assert isinstance(r.accepted["home"].dtype, pd.CategoricalDtype)
    assert pd.api.types.is_datetime64_any_dtype(r.accepted["opened"])


# ---- dataset-level failures ------------------------------------------------------------------
def test_empty_frame_is_refused():
    c = contract_of(training())
    with pytest.raises(DataError, match="no rows"):
        check(c, training().iloc[:0])


def test_missing_column_is_named():
    c = contract_of(training())
    with pytest.raises(DataError, match="column 'income' is in the data contract but not in the data"):
        check(c, training().drop(columns=["income"]))


def test_missing_target_column_is_named():
    c = contract_of(training())
    with pytest.raises(DataError, match="data.target: column 'status' is in the data contract but not"):
        check(c, training().drop(columns=["status"]))


def test_missing_target_is_allowed_for_unlabelled_data():
    c = contract_of(training())
    r = check(c, training().drop(columns=["status"]), require_target=False)
    assert r.rows_accepted == 6 and r.y is None


def test_extra_column_is_an_error_by_default():
    c = contract_of(training())
    with pytest.raises(DataError, match="column 'note' is not in the data contract"):
        check(c, training().assign(note="x"))


def test_extra_column_can_be_dropped_with_a_warning():
    c = contract_of(training())
    r = check(c, training().assign(note="x"), extra_columns="drop")
    assert "note" not in r.accepted.columns and r.dropped_columns == ["note"]
    assert any("note" in w for w in r.warnings)


def test_text_in_a_numeric_column_is_the_wrong_type():
    c = contract_of(training())
    bad = training().assign(income=["abc", "x", "y", "80", "z", "w"])
    with pytest.raises(DataError, match=r"column 'income': expected numeric values, found text such as "
                                        r"'abc', 'x', 'y' \(rows 0, 1, 2, \.\.\."):
        check(c, bad)


def test_declared_numeric_column_of_text_is_the_wrong_type():
    frame = training().assign(home=["a", "b", "c", "d", "e", "f"])
    kinds = K.infer_kinds(frame, target="status", id_column="id", declared={"home": "numeric"})
    with pytest.raises(DataError, match="column 'home': expected numeric values, found text"):
        infer_contract(frame, kinds, "status", "id")


def test_all_null_column_is_refused_at_inference():
    frame = training().assign(income=np.nan)
    with pytest.raises(DataError, match="column 'income' is entirely empty"):
        contract_of(frame)


def test_all_null_column_is_refused_at_check():
    c = contract_of(training())
    with pytest.raises(DataError, match="column 'home' is entirely empty"):
        check(c, training().assign(home=None))


def test_target_not_in_the_data_is_named_with_a_suggestion():
    frame = training()
    with pytest.raises(DataError, match=r"data.target: column 'statu' not in the data; columns are: .*"
                                        r"did you mean 'status'"):
        infer_contract(frame, K.infer_kinds(frame), "statu")


def test_constant_target_is_refused_at_inference():
    with pytest.raises(DataError, match="data.target: column 'status' is constant"):
        contract_of(training().assign(status="good"))


def test_constant_target_is_refused_at_check():
    c = contract_of(training())
    with pytest.raises(DataError, match="data.target: column 'status' is constant"):
        check(c, training().assign(status="good"))


# ---- row-level failures go to quarantine -----------------------------------------------------
def later_batch() -> pd.DataFrame:
    df = training()
    df.loc[0, "age"] = 200              # above the range
    df.loc[1, "home"] = "castle"        # category not allowed
    df.loc[2, "age"] = None             # age never missing in training
    df.loc[3, "id"] = 3                 # duplicate of row 2's id
    df.loc[4, "opened"] = "2024-99-99"  # unparseable date
    df.loc[5, "status"] = "unknown"     # label not in the contract
    return pd.concat([df, training().assign(id=range(7, 13))], ignore_index=True)


@pytest.fixture
def batch_result():
    return check(contract_of(training(), range_margin=0.0), later_batch(), max_unparseable_share=0.1)


def test_rows_in_equals_accepted_plus_quarantined(batch_result):
    r = batch_result
    assert r.rows_in == 12 and r.rows_accepted + r.rows_quarantined == r.rows_in
    assert r.rows_quarantined == 6


def test_quarantine_names_each_reason(batch_result):
    q = batch_result.quarantine.set_index(ROW)[REASON]
    assert "age: above the allowed maximum 61" in q[0]
    assert "home: category not in the contract's 3 levels" in q[1]
    assert "age: missing value" in q[2]
    assert "id: duplicate id" in q[3]
    assert "opened: not a valid date" in q[4]
    assert "status: target label not one of 'good', 'bad'" in q[5]


def test_quarantine_keeps_the_values_as_read(batch_result):
    q = batch_result.quarantine.set_index(ROW)
    assert q.loc[1, "home"] == "castle" and q.loc[4, "opened"] == "2024-99-99"


def test_accepted_rows_exclude_the_quarantined(batch_result):
    r = batch_result
    assert r.accepted_rows.tolist() == list(range(6, 12))
    assert len(r.y) == r.rows_accepted


def test_values_below_the_range_are_quarantined():
    c = contract_of(training(), range_margin=0.0)
    r = check(c, training().assign(age=[25, 40, 33, 58, 61, 5]))
    assert r.quarantine[ROW].tolist() == [5]
    assert r.quarantine[REASON].iloc[0] == "age: below the allowed minimum 25"


def test_a_few_unparseable_numbers_are_quarantined_not_fatal():
    frame = pd.concat([training()] * 10, ignore_index=True).assign(id=range(60))
    c = contract_of(frame)
    bad = frame.assign(income=frame["income"].astype(object))
    bad.loc[7, "income"] = "n/a?"
    r = check(c, bad, max_unparseable_share=0.05)
    assert r.quarantine[ROW].tolist() == [7]
    assert r.quarantine[REASON].iloc[0] == "income: not a finite number"


def test_missing_target_is_quarantined():
    c = contract_of(training())
    r = check(c, training().assign(status=["good", None, "bad", "good", "bad", "good"]))
    assert r.quarantine[ROW].tolist() == [1]
    assert r.quarantine[REASON].iloc[0] == "status: target is missing"


def test_row_checks_off_keeps_rows_with_bad_values():
    c = contract_of(training(), range_margin=0.0)
    r = check(c, later_batch(), row_checks=False, max_unparseable_share=0.1)
    assert r.quarantine[ROW].tolist() == [5]  # only the unknown target label
    assert r.rows_accepted == 11


def test_drifted_synthetic_data_mostly_passes_the_reference_contract(credit):
    _, c = credit
    later = make_credit(5000, seed=2, drifted=True)
    later["application_id"] = later["application_id"] - 800_000_000  # ids overlap the reference on purpose
    r = check(c, later)
    assert r.rows_accepted + r.rows_quarantined == r.rows_in == 5000
    assert r.quarantine_share < 0.05
    assert any("income" in w for w in r.warnings)  # more missing incomes than the contract allows


def test_reasons_join_every_failed_check():
    r = Reasons(3)
    r.add(np.array([True, False, True]), "a: first")
    r.add(np.array([True, False, False]), "b: second")
    rows, text = r.explain()
    assert rows.tolist() == [0, 2]
    assert text.tolist() == ["a: first; b: second", "a: first"]
    assert r.counts() == {"a: first": 2, "b: second": 1}
