"""cuDF frames in the feature pipeline: fit, transform and the partition tasks read them through
pandas (strings are host work), and give what the pandas frame gives.

cuDF does not install without a GPU, so a stand-in with the part of cuDF's DataFrame API this code
uses (``to_pandas``, column selection, ``len``) and a ``cudf`` module name takes its place.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from engine.features import FeaturePipeline
from engine.features import runtime as rt
from engine.features.partitioned import _count_rows, _prepare_partition
from tests.unit.test_features_dask import CREDIT_ARGS, assert_same_fit, credit_frame, credit_pipeline


class CudfFrame:
    """A cuDF DataFrame as far as the feature code is concerned."""

    def __init__(self, pdf: pd.DataFrame) -> None:
        self._pdf = pdf

    def to_pandas(self) -> pd.DataFrame:
        return self._pdf.copy()

    def __getitem__(self, columns):
        return CudfFrame(self._pdf[columns])

    def __len__(self) -> int:
        return len(self._pdf)


CudfFrame.__module__ = "cudf.core.dataframe"


def test_fit_and_transform_of_a_cudf_frame_equal_the_pandas_ones(tmp_path):
    df, y = credit_frame(1200)
    host = credit_pipeline(sample_rows=400)
    expected = host.fit_transform(df, y, **CREDIT_ARGS)
    via = credit_pipeline(sample_rows=400)
    got = via.fit_transform(CudfFrame(df), y, **CREDIT_ARGS)  # no CuPy here: computed with NumPy
    np.testing.assert_array_equal(np.asarray(got), expected)
    assert_same_fit(host, via, tmp_path)
    np.testing.assert_array_equal(np.asarray(via.transform(CudfFrame(df.iloc[:300]))), host.transform(df.iloc[:300]))


def test_partition_tasks_read_a_cudf_partition_through_pandas():
    df, _ = credit_frame(500)
    fp = credit_pipeline().fit(df, **CREDIT_ARGS)
    candidates = [(c, k) for c, k in fp.input_kinds_.items()]
    got = _prepare_partition(CudfFrame(df), candidates)
    expected = _prepare_partition(df, candidates)
    assert got.keys() == expected.keys()
    for c in expected:
        a, b = got[c], expected[c]
        if isinstance(b, rt.Encoded):
            np.testing.assert_array_equal(a.codes, b.codes)
            assert a.values.tolist() == b.values.tolist()
        else:
            np.testing.assert_array_equal(a, b)
    assert _count_rows(CudfFrame(df), ["application_id", "region"]) == _count_rows(df, ["application_id", "region"])
    assert _count_rows(CudfFrame(df), ["application_id"])[1] == {"application_id": True}
