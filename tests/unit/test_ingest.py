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


# ------------------------------------------------------------------------------------------ streaming
def _stream_frame(n: int = 2500):
    import numpy as np

    rng = np.random.default_rng(5)
    x = rng.normal(size=n)
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "x": x,
        "k": rng.integers(0, 50, n),
        "code": rng.choice(["007", "010", "123"], n),
        "unused": rng.choice(["a", "b"], n),
    })


def test_iter_frames_streams_a_csv_in_chunks_of_the_chosen_columns_and_types(tmp_path):
    import pyarrow as pa

    from engine.data.ingest import iter_frames

    df = _stream_frame()
    path = tmp_path / "big.csv"
    df.to_csv(path, index=False)
    parts = list(iter_frames(path, ["x", "code", "k"], {"x": pa.float64(), "code": pa.string()},
                             batch_rows=600, block_bytes=4096))
    assert [len(p) for p in parts] == [600] * 4 + [100]  # blocks re-cut into chunks of 600 rows
    got = pd.concat(parts, ignore_index=True)
    assert list(got.columns) == ["x", "code", "k"] and len(got) == len(df)  # only the chosen columns
    assert got["code"].tolist() == df["code"].tolist()  # read as strings: "007" keeps its zeros
    np_x = got["x"].to_numpy(float)
    assert ((np_x == df["x"].to_numpy()) | (pd.isna(np_x) & df["x"].isna().to_numpy())).all()


def test_iter_frames_streams_a_parquet_folder(tmp_path):
    from engine.data.ingest import iter_frames

    df = _stream_frame()
    (tmp_path / "pq").mkdir()
    df.iloc[:1000].to_parquet(tmp_path / "pq" / "a.parquet", index=False)
    df.iloc[1000:].to_parquet(tmp_path / "pq" / "b.parquet", index=False)
    parts = list(iter_frames(tmp_path / "pq", ["k", "x"], batch_rows=700))
    got = pd.concat(parts, ignore_index=True)
    assert [len(p) for p in parts] == [700] * 3 + [400] and sorted(got["k"].tolist()) == sorted(df["k"].tolist())


def test_iter_frames_names_missing_columns_and_bad_blocks(tmp_path):
    import pyarrow as pa

    from engine.data.ingest import iter_frames

    df = _stream_frame()
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="column\\(s\\) nope, gone not found"):
        iter_frames(path, ["x", "nope", "gone"])  # checked at once, before any reading
    header_only = tmp_path / "h.csv"
    header_only.write_text("x,k\n")
    with pytest.raises(DataError, match="no data rows"):
        list(iter_frames(header_only, ["x"]))
    bad = tmp_path / "bad.csv"
    lines = ["x,k"] + [f"{i}.5,{i}" for i in range(3000)] + ["oops,1"]
    bad.write_text("\n".join(lines) + "\n")
    frames = iter_frames(bad, ["x", "k"], {"x": pa.float64()}, batch_rows=500, block_bytes=2048)
    assert len(next(frames)) == 500  # the first blocks parse
    with pytest.raises(DataError, match="cannot read .*bad.csv.*oops"):  # the last one does not
        list(frames)
    with pytest.raises(DataError, match="does not exist"):
        iter_frames(tmp_path / "none.csv", ["x"])


def test_iter_frames_reads_crlf_files_with_a_bom_and_no_final_newline(tmp_path):
    from engine.data.ingest import iter_frames

    path = tmp_path / "win.csv"
    rows = [f"{i},c{i % 3}" for i in range(1000)]
    path.write_bytes(b"\xef\xbb\xbf" + ("x,c\r\n" + "\r\n".join(rows)).encode())
    got = pd.concat(iter_frames(path, ["x", "c"], batch_rows=300, block_bytes=1000), ignore_index=True)
    assert got["x"].tolist() == list(range(1000)) and got["c"].tolist() == [f"c{i % 3}" for i in range(1000)]
