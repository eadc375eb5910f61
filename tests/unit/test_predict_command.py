"""``trident predict``'s chunked writer: the scored chunks of a file written as one CSV or Parquet file."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.commands.predict import _write_scored
from engine.errors import DataError


def _parts():
    yield pd.DataFrame({"a": [1, 2], "c": ["x", "007"], "score": np.float32([0.25, 0.5])})
    yield pd.DataFrame({"a": [3.0, np.nan], "c": ["y", None], "score": np.float32([0.75, 1.0])})  # a read as float


def test_chunks_are_written_as_one_csv_with_one_header(tmp_path):
    assert _write_scored(tmp_path / "out.csv", _parts()) == 4
    text = (tmp_path / "out.csv").read_text().splitlines()
    assert text[0] == "a,c,score" and len(text) == 5 and text[2] == "2,007,0.5"


def test_chunks_are_written_as_one_parquet_file_in_the_first_chunks_types(tmp_path):
    assert _write_scored(tmp_path / "out.parquet", _parts()) == 4
    got = pd.read_parquet(tmp_path / "out.parquet")
    assert got["a"].tolist()[:3] == [1, 2, 3] and pd.isna(got["a"].iloc[3]) and got["c"].tolist()[:2] == ["x", "007"]


def test_a_later_chunk_that_cannot_take_the_first_chunks_types_is_an_error_and_writes_nothing(tmp_path):
    def parts():
        yield pd.DataFrame({"a": [1, 2]})
        yield pd.DataFrame({"a": [2.5, 3.5]})

    with pytest.raises(DataError, match="from row 2 on do not fit the column types"):
        _write_scored(tmp_path / "out.parquet", parts())
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file left
