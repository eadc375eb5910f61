"""Reading CSV / Parquet / partitioned Parquet, column kinds and the target's encoding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.config.base import DataConfig, DataSource
from engine.data import kinds as K
from engine.data.ingest import read_csv, read_parquet, read_table
from engine.data.target import choose_positive, describe_target, encode_target
from engine.errors import ConfigError, DataError


def small() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["a1", "a2", "a3", "a4"],
        "when": ["2024-01-31", "2024-02-29", None, "2024-03-01"],
        "amount": [1.5, None, 3.0, 4.25],
        "count": [1, 2, 3, 4],
        "home": ["rent", "own", None, "rent"],
        "zip": ["007", "010", "007", "123"],
        "flag": [True, False, True, None],
        "status": ["good", "bad", "good", "good"],
    })


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


# ---- CSV -------------------------------------------------------------------------------------
def test_csv_types_are_inferred(tmp_path):
    df = read_csv(write_csv(tmp_path / "d.csv", small()))
    assert df.shape == (4, 8)
    assert pd.api.types.is_float_dtype(df["amount"]) and df["amount"].isna().sum() == 1
    assert pd.api.types.is_integer_dtype(df["count"])
    assert pd.api.types.is_datetime64_any_dtype(df["when"])
    assert df["home"].isna().sum() == 1


def test_csv_empty_strings_and_na_markers_are_missing(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("a,b\nx,1\n,NA\nN/A,null\n")
    df = read_csv(p)
    assert df["a"].isna().tolist() == [False, True, True]
    assert df["b"].isna().tolist() == [False, True, True]


def test_declared_categorical_keeps_leading_zeros(tmp_path):
    df = read_csv(write_csv(tmp_path / "d.csv", small()), declared={"zip": "categorical"})
    assert df["zip"].tolist() == ["007", "010", "007", "123"]


def test_drop_removes_columns(tmp_path):
    df = read_csv(write_csv(tmp_path / "d.csv", small()), drop=["zip", "flag"])
    assert "zip" not in df.columns and "flag" not in df.columns


def test_drop_of_an_unknown_column_names_it(tmp_path):
    with pytest.raises(DataError, match="data.drop: column 'nope' not in the data"):
        read_csv(write_csv(tmp_path / "d.csv", small()), drop=["nope"])


def test_missing_csv_names_the_path(tmp_path):
    with pytest.raises(DataError, match=r"data.path: '.*nothere.csv' does not exist"):
        read_csv(tmp_path / "nothere.csv")


def test_empty_csv_is_refused(tmp_path):
    p = tmp_path / "e.csv"
    p.write_bytes(b"")
    with pytest.raises(DataError, match=r"'.*e.csv' is empty"):
        read_csv(p)


def test_header_only_csv_is_refused(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("a,b,c\n")
    with pytest.raises(DataError, match="has a header but no data rows"):
        read_csv(p)


def test_ragged_csv_is_unreadable(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("a,b,c\n1,2,3\n4,5\n")
    with pytest.raises(DataError, match=r"cannot read '.*r.csv' as CSV: .*Expected 3 columns"):
        read_csv(p)


def test_folder_given_as_csv_is_refused(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        read_csv(tmp_path)


def test_duplicate_header_names_are_refused(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(DataError, match="column 'a' appears more than once"):
        read_csv(p)


def test_unnamed_index_column_gets_a_name(tmp_path):
    p = write_csv(tmp_path / "d.csv", small().reset_index())
    p.write_text(p.read_text().replace("index,", ",", 1))
    assert read_csv(p).columns[0] == "unnamed_0"


# ---- Parquet ---------------------------------------------------------------------------------
def test_parquet_file_round_trips(tmp_path):
    frame = small().assign(when=pd.to_datetime(small()["when"]))
    frame.to_parquet(tmp_path / "d.parquet")
    df = read_parquet(tmp_path / "d.parquet")
    assert df.shape == (4, 8)
    assert df["amount"].tolist()[0] == 1.5
    assert pd.api.types.is_datetime64_any_dtype(df["when"])


def test_parquet_partition_folder_reads_every_partition(tmp_path):
    frame = pd.DataFrame({"x": np.arange(30, dtype=float), "region": ["n", "s", "e"] * 10,
                          "y": [0, 1] * 15})
    pq.write_to_dataset(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "parts",
                        partition_cols=["region"])
    assert len(list((tmp_path / "parts").iterdir())) == 3
    df = read_parquet(tmp_path / "parts")
    assert len(df) == 30
    assert sorted(df["region"].unique()) == ["e", "n", "s"]
    assert sorted(df["x"]) == list(range(30))
    assert K.infer_kind(df["region"]) == K.CATEGORICAL


def test_parquet_folder_without_files_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no Parquet files"):
        read_parquet(tmp_path / "empty")


def test_corrupt_parquet_is_unreadable(tmp_path):
    p = tmp_path / "bad.parquet"
    p.write_bytes(b"this is not parquet at all")
    with pytest.raises(DataError, match=r"cannot read '.*bad.parquet' as Parquet"):
        read_parquet(p)


# ---- read_table ------------------------------------------------------------------------------
def test_read_table_synthetic_uses_rows_and_seed():
    df = read_table(DataConfig(rows=500, seed=4))
    assert len(df) == 500
    pd.testing.assert_frame_equal(df, read_table(DataConfig(rows=500, seed=4)))


def test_read_table_csv_needs_a_path():
    with pytest.raises(ConfigError, match="data.path: required for data.source=csv"):
        read_table(DataConfig(source=DataSource.csv, path=None))


def test_read_table_reads_parquet(tmp_path):
    small().to_parquet(tmp_path / "d.parquet")
    assert len(read_table(DataConfig(source=DataSource.parquet, path=str(tmp_path / "d.parquet")))) == 4


def test_declared_kind_must_be_known(tmp_path):
    with pytest.raises(ConfigError, match="data.dtypes.zip: expected one of numeric, categorical"):
        read_csv(write_csv(tmp_path / "d.csv", small()), declared={"zip": "postcode"})


# ---- kinds -----------------------------------------------------------------------------------
def test_kinds_are_inferred_from_values(tmp_path):
    df = read_csv(write_csv(tmp_path / "d.csv", small()))
    kinds = K.infer_kinds(df, target="status", id_column="id")
    assert kinds == {"id": "id", "when": "datetime", "amount": "numeric", "count": "numeric",
                     "home": "categorical", "zip": "numeric", "flag": "categorical", "status": "target"}


def test_declared_kinds_override_inference(tmp_path):
    df = read_csv(write_csv(tmp_path / "d.csv", small()), declared={"zip": "categorical"})
    kinds = K.infer_kinds(df, target="status", declared={"zip": "categorical", "count": "categorical"})
    assert kinds["zip"] == "categorical" and kinds["count"] == "categorical"


def test_iso_date_strings_are_datetime_only_when_all_parse():
    assert K.infer_kind(pd.Series(["2024-01-01", "2024-01-02T10:00:00"])) == K.DATETIME
    assert K.infer_kind(pd.Series(["2024-01-01", "2024-13-45"])) == K.CATEGORICAL


def test_numeric_strings_are_numeric():
    assert K.infer_kind(pd.Series(["1", "2.5", None], dtype="str")) == K.NUMERIC


def test_long_distinct_strings_are_text():
    s = pd.Series([f"free-form note number {i} about the applicant's situation" for i in range(20)])
    assert K.infer_kind(s) == K.TEXT


def test_booleans_are_categorical_with_string_levels():
    values, bad = K.to_categorical(pd.Series([True, False, True]))
    assert list(values.cat.categories) == ["False", "True"] and not bad.any()


def test_to_numeric_flags_text_and_infinities():
    values, bad = K.to_numeric(pd.Series(["1", "abc", None, "inf", "2.5"]))
    assert bad.tolist() == [False, True, False, True, False]
    assert values.iloc[4] == 2.5 and np.isnan(values.iloc[1])


def test_to_datetime_flags_unparseable_dates():
    values, bad = K.to_datetime(pd.Series(["2024-01-31", "2024-02-30", None]))
    assert bad.tolist() == [False, True, False]
    assert values.iloc[0] == pd.Timestamp("2024-01-31")


def test_whole_floats_format_as_integers():
    assert K.format_labels(pd.Series([1.0, None, 0.0])).tolist()[::2] == ["1", "0"]


# ---- target ----------------------------------------------------------------------------------
@pytest.mark.parametrize("counts, positive", [
    ({"good": 70, "bad": 30}, "bad"),
    ({"no": 70, "yes": 30}, "yes"),
    ({"0": 70, "1": 30}, "1"),
    ({"False": 20, "True": 80}, "True"),
    ({"A": 80, "B": 20}, "B"),
])
def test_positive_label_rules(counts, positive):
    assert choose_positive(counts)[0] == positive


def test_declared_positive_label_wins():
    assert choose_positive({"good": 70, "bad": 30}, declared="good") == ("good", "declared")


def test_declared_positive_label_must_exist():
    with pytest.raises(DataError, match="data.positive_label: 'paid' is not a value of column 'Status'"):
        choose_positive({"good": 70, "bad": 30}, declared="paid", column="Status")


def test_binary_target_from_labels_is_encoded_and_mapping_recorded():
    s = pd.Series(["good", "bad", None, "good"], name="Status")
    spec = describe_target(s, "binary")
    y, invalid = encode_target(s, spec)
    assert y.dtype == np.int8 and y.tolist() == [0, 1, 0, 0]
    assert invalid.tolist() == [False, False, True, False]
    assert spec.to_dict()["mapping"] == {"good": 0, "bad": 1}


def test_constant_target_is_refused():
    with pytest.raises(DataError, match="data.target: column 'Status' is constant"):
        describe_target(pd.Series(["good"] * 5, name="Status"), "binary")


def test_binary_target_with_many_values_is_refused():
    with pytest.raises(DataError, match="has 3 distinct values; data.task=binary needs exactly two"):
        describe_target(pd.Series(["a", "b", "c"], name="t"), "binary")


def test_regression_target_is_float():
    s = pd.Series([1, 2, 3], name="price")
    spec = describe_target(s, "regression")
    y, invalid = encode_target(s, spec)
    assert y.dtype == np.float64 and y.tolist() == [1.0, 2.0, 3.0] and not invalid.any()


def test_regression_target_must_be_numeric():
    with pytest.raises(DataError, match="must be numeric for data.task=regression"):
        describe_target(pd.Series(["x", "y", "z"], name="price"), "regression")
