"""FeaturePipeline.fit / fit_transform with ``xp`` a device namespace: every full-data statistic and
the training matrix are computed on the device, and the fitted pipeline equals the host fit.

``FakeDevice`` (tests/fake_device.py) is NumPy underneath but refuses to mix host and device arrays,
so a statistic that silently reads a host column fails here as it would on CuPy. Tolerance: the
saved arrays and the training matrix are equal bit for bit, except for a non-integer target, whose
sums a GPU adds in another order (rtol 1e-12 on the saved values, 1e-6 on the float32 matrix).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.features import FeaturePipeline
from tests.fake_device import DeviceArray, FakeDevice
from tests.unit.test_features_dask import (CREDIT_ARGS, CREDIT_CSV, assert_same_fit, credit_frame, credit_pipeline,
                                           suspects_frame)


@pytest.mark.parametrize("sample", [500, 200000], ids=["sampled", "all-rows"])
@pytest.mark.parametrize("reduce", ["none", "pca"])
def test_synthetic_credit_device_fit_equals_the_host_fit(tmp_path, sample, reduce):
    df, y = credit_frame()
    host = credit_pipeline(sample_rows=sample, reduce=reduce, n_components=6)
    expected = host.fit_transform(df, y, **CREDIT_ARGS)
    dev = credit_pipeline(sample_rows=sample, reduce=reduce, n_components=6)
    got = dev.fit_transform(df, y, xp=FakeDevice(), **CREDIT_ARGS)
    assert isinstance(got, DeviceArray) and got.dtype == np.float32 and got.flags.f_contiguous == (reduce == "none")
    np.testing.assert_array_equal(np.asarray(got), expected)
    assert_same_fit(host, dev, tmp_path)
    encoders = {c["encoder"] for c in host.report()["columns"].values() if "encoder" in c}
    assert encoders == {"onehot", "hashing", "frequency", "target"}
    numeric = host.report()["numeric"]
    assert "dti" in numeric and "application_date__hour" in numeric and "decision_date__hour" not in numeric


def test_credit_csv_device_fit_equals_the_host_fit(tmp_path):
    if not CREDIT_CSV.is_file():
        pytest.skip(f"credit data not found at {CREDIT_CSV}")
    csv = pd.read_csv(CREDIT_CSV)
    y = (csv.pop("Status") == "bad").to_numpy(dtype=np.int8)
    cfg = dict(sample_rows=1000, onehot_max_levels=3, medium_cardinality_encoder="target")
    host = FeaturePipeline(**cfg)
    expected = host.fit_transform(csv, y, exclude=["Age", "Marital"])
    dev = FeaturePipeline(**cfg)
    got = dev.fit_transform(csv, y, exclude=["Age", "Marital"], xp=FakeDevice())
    np.testing.assert_array_equal(np.asarray(got), expected)
    assert_same_fit(host, dev, tmp_path)
    assert host.report()["columns"]["Home"]["encoder"] == "target"


def test_out_of_fold_columns_are_computed_on_the_device():
    df, y = credit_frame()
    kw = dict(sample_rows=500, encoders={"postcode": "target", "employer": "target"})
    expected = credit_pipeline(**kw).fit_transform(df, y, **CREDIT_ARGS)
    dev = credit_pipeline(**kw)
    got = np.asarray(dev.fit_transform(df, y, xp=FakeDevice(), **CREDIT_ARGS))
    for name in ("postcode__target", "employer__target"):
        j = dev.feature_names_.index(name)
        np.testing.assert_array_equal(got[:, j], expected[:, j])
        assert not np.array_equal(got[:, j], dev.transform(df)[:, j])  # out of fold, not the refit values


def test_regression_target_on_the_device_equals_the_host_fit_within_rounding(tmp_path):
    df, _ = credit_frame(1500)
    y = np.random.default_rng(9).gamma(2.0, 1.3, len(df))
    host = credit_pipeline(sample_rows=400)
    expected = host.fit_transform(df, y, **CREDIT_ARGS)
    dev = credit_pipeline(sample_rows=400)
    got = dev.fit_transform(df, y, xp=FakeDevice(), **CREDIT_ARGS)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-6)
    assert_same_fit(host, dev, tmp_path, rtol=1e-12)


def test_constant_and_duplicate_suspects_are_confirmed_on_the_device(tmp_path):
    df, _, cfg = suspects_frame()  # "rare" constant and "twin" a duplicate on the sample only
    host = FeaturePipeline(**cfg)
    expected = host.fit_transform(df)
    dev = FeaturePipeline(**cfg)
    np.testing.assert_array_equal(np.asarray(dev.fit_transform(df, xp=FakeDevice())), expected)
    assert_same_fit(host, dev, tmp_path)
    assert dev.feature_names_ == ["a", "rare", "twin"]
    dropped = dev.report()["dropped_features"]
    assert dropped["zero"]["reason"] == "constant" and dropped["copy"]["reason"] == "duplicate"


def test_fit_on_the_device_then_transform_on_the_device_equals_the_host_transform():
    df, y = credit_frame(1200)
    fp = credit_pipeline(sample_rows=300).fit(df, y, xp=FakeDevice(), **CREDIT_ARGS)
    got = fp.transform(df, xp=FakeDevice())
    assert isinstance(got, DeviceArray)
    np.testing.assert_array_equal(np.asarray(got), fp.transform(df))


def test_hashing_encoder_hashes_arrow_strings_where_the_device_keeps_them():
    rng = np.random.default_rng(3)
    words = np.array([f"shop-{i}" for i in range(300)] + ["", "café", "東京"], dtype=object)
    raw = words[rng.integers(0, len(words), 4000)]
    raw[rng.random(4000) < 0.05] = None
    df = pd.DataFrame({"shop": pd.Series(raw, dtype="string[pyarrow]"), "x": rng.normal(size=4000)})
    fp = FeaturePipeline(encoders={"shop": "hashing"}, hashing_buckets=8).fit(df, xp=FakeDevice())
    hashed = [e["column"] for e in fp.runtime_.categorical if e["encoder"] == "hashing"]
    assert hashed == ["shop"]
    got = fp.transform(df, xp=FakeDevice())
    expected = fp.transform(df)
    np.testing.assert_array_equal(np.asarray(got), expected)
    block = [j for j, n in enumerate(fp.feature_names_) if n.startswith("shop__hash")]
    assert len(block) >= 6 and (expected[:, block].sum(axis=1) == 1).all()  # one bucket per row, missing included
