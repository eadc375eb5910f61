"""FeaturePipeline.fit_dask / fit_transform_dask: a partitioned fit equals the in-memory fit on the
concatenated partitions (saved spec, arrays and training matrix), with clear errors for bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.errors import DataError
from engine.features import FeaturePipeline
from engine.features.config import resolve_config
from engine.features.pipeline import sample_rows

REPO = Path(__file__).resolve().parents[2]
CREDIT_CSV = REPO.parent / "shared" / "data" / "credit_data.csv"


@pytest.fixture(autouse=True)
def synchronous_scheduler():
    import dask

    with dask.config.set(scheduler="synchronous"):
        yield


def partitioned(df: pd.DataFrame, cuts: list[int]):
    """A Dask DataFrame whose partitions are ``df`` cut at ``cuts`` (uneven; equal cuts give an empty one)."""
    import dask.dataframe as dd

    bounds = [0, *cuts, len(df)]
    return dd.from_map(lambda ab: df.iloc[ab[0]:ab[1]], list(zip(bounds[:-1], bounds[1:])), meta=df.iloc[:0])


def saved(fp: FeaturePipeline, path: Path) -> tuple[dict, dict]:
    fp.save(path)
    spec = json.loads((path / "features.json").read_text())
    spec["pipeline"]["report"].pop("fitted_on", None)
    with np.load(path / "features.npz") as z:
        return spec, {k: z[k] for k in z.files}


def assert_same_fit(mem: FeaturePipeline, part: FeaturePipeline, tmp_path: Path, rtol: float = 0.0) -> None:
    spec_m, arr_m = saved(mem, tmp_path / "memory")
    spec_p, arr_p = saved(part, tmp_path / "dask")
    assert spec_p == spec_m
    assert arr_p.keys() == arr_m.keys()
    for k in arr_m:
        assert arr_p[k].dtype == arr_m[k].dtype, k
        if rtol and arr_m[k].dtype.kind == "f":
            np.testing.assert_allclose(arr_p[k], arr_m[k], rtol=rtol, atol=0, err_msg=k)
        else:
            np.testing.assert_array_equal(arr_p[k], arr_m[k], err_msg=k)


def credit_frame(rows: int = 2400) -> tuple[pd.DataFrame, np.ndarray]:
    """Synthetic credit data with missing numbers, categories and dates (some dates at midnight)."""
    from engine.data.synthetic import make_credit

    df = make_credit(rows, seed=2)
    y = df.pop("default").to_numpy()
    rng = np.random.default_rng(4)
    when = df["application_date"].copy()
    when[rng.random(rows) < 0.05] = pd.NaT
    df["application_date"] = when
    df["decision_date"] = when.dt.normalize() + pd.Timedelta(days=3)  # no time of day: no hour part
    return df, y


def credit_pipeline(**kw) -> FeaturePipeline:
    cfg = dict(encoders={"employer": "hashing", "postcode": "target", "region": "frequency"}, hashing_buckets=16,
               derive=[{"name": "dti", "op": "ratio", "a": "debt", "b": "income"}])
    cfg.update(kw)
    return FeaturePipeline(**cfg)


CREDIT_ARGS = dict(kinds={"application_id": "id"}, exclude=["gender", "age"])
CREDIT_CUTS = [150, 150, 1100, 1130]  # partitions of 150, 0, 950, 30 and 1,270 rows


# ------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("sample", [500, 200000], ids=["sampled", "all-rows"])
@pytest.mark.parametrize("reduce", ["none", "pca"])
def test_synthetic_credit_fit_equals_the_in_memory_fit(tmp_path, sample, reduce):
    df, y = credit_frame()
    ddf = partitioned(df, CREDIT_CUTS)
    whole = ddf.compute()
    mem = credit_pipeline(sample_rows=sample, reduce=reduce, n_components=6)
    expected = mem.fit_transform(whole, y, **CREDIT_ARGS)
    part = credit_pipeline(sample_rows=sample, reduce=reduce, n_components=6)
    got = part.fit_transform_dask(ddf, y, **CREDIT_ARGS)
    assert got.dtype == np.float32 and got.chunks[0] == (150, 950, 30, 1270)  # the empty partition adds no chunk
    np.testing.assert_array_equal(got.compute(), expected)
    assert_same_fit(mem, part, tmp_path)
    encoders = {c["encoder"] for c in mem.report()["columns"].values() if "encoder" in c}
    assert encoders == {"onehot", "hashing", "frequency", "target"}
    assert "dti" in mem.report()["numeric"]
    numeric = mem.report()["numeric"]
    assert "application_date__hour" in numeric and "decision_date__hour" not in numeric


@pytest.mark.parametrize("sample", [500, 200000], ids=["sampled", "all-rows"])
def test_credit_csv_fit_equals_the_in_memory_fit(tmp_path, sample):
    if not CREDIT_CSV.is_file():
        pytest.skip(f"credit data not found at {CREDIT_CSV}")
    csv = pd.read_csv(CREDIT_CSV)
    ddf = partitioned(csv, [700, 710, 3000])
    y_dask = (ddf["Status"] == "bad").astype("int8")  # a Dask Series aligned with the partitions
    ddf = ddf.drop(columns=["Status"])
    whole = ddf.compute()
    y = (csv["Status"] == "bad").to_numpy(dtype=np.int8)
    cfg = dict(sample_rows=sample, onehot_max_levels=3, medium_cardinality_encoder="target", reduce="pca",
               n_components=4)
    mem = FeaturePipeline(**cfg)
    expected = mem.fit_transform(whole, y, exclude=["Age", "Marital"])
    part = FeaturePipeline(**cfg)
    got = part.fit_transform_dask(ddf, y_dask, exclude=["Age", "Marital"]).compute()
    np.testing.assert_array_equal(got, expected)
    assert_same_fit(mem, part, tmp_path)
    assert mem.report()["columns"]["Home"]["encoder"] == "target"


def test_out_of_fold_columns_of_the_training_matrix_equal_the_in_memory_ones():
    df, y = credit_frame()
    ddf = partitioned(df, CREDIT_CUTS)
    mem = credit_pipeline(sample_rows=500, encoders={"postcode": "target", "employer": "target"})
    expected = mem.fit_transform(ddf.compute(), y, **CREDIT_ARGS)
    part = credit_pipeline(sample_rows=500, encoders={"postcode": "target", "employer": "target"})
    got = part.fit_transform_dask(ddf, y, **CREDIT_ARGS).compute()
    for name in ("postcode__target", "employer__target"):
        j = mem.feature_names_.index(name)
        np.testing.assert_array_equal(got[:, j], expected[:, j])
        assert not np.array_equal(expected[:, j], mem.transform(ddf.compute())[:, j])  # out of fold, not refit


@pytest.mark.parametrize("form", ["numpy", "dask-array-other-chunks", "dask-array-unknown-chunks"])
def test_target_forms_give_the_same_fit(tmp_path, form):
    import dask.array as da

    df, y = credit_frame(1200)
    ddf = partitioned(df, [400, 401, 1000])
    if form == "numpy":
        target = y
    elif form == "dask-array-other-chunks":
        target = da.from_array(y, chunks=500)
    else:
        target = partitioned(pd.DataFrame({"y": y}), [700]).y.to_dask_array()
    mem = credit_pipeline(sample_rows=300, encoders={"postcode": "target"})
    expected = mem.fit_transform(ddf.compute(), y, **CREDIT_ARGS)
    part = credit_pipeline(sample_rows=300, encoders={"postcode": "target"})
    np.testing.assert_array_equal(part.fit_transform_dask(ddf, target, **CREDIT_ARGS).compute(), expected)
    assert_same_fit(mem, part, tmp_path)
    assert part.report()["columns"]["employer"]["encoder"] == "hashing"  # by cardinality: no per-fold sums


def test_regression_target_equals_the_in_memory_fit_within_rounding(tmp_path):
    df, _ = credit_frame(1500)
    y = np.random.default_rng(9).gamma(2.0, 1.3, len(df))
    ddf = partitioned(df, [100, 900])
    mem = credit_pipeline(sample_rows=400)
    expected = mem.fit_transform(ddf.compute(), y, **CREDIT_ARGS)
    part = credit_pipeline(sample_rows=400)
    got = part.fit_transform_dask(ddf, y, **CREDIT_ARGS).compute()
    # target sums are added per partition: equal to the last bits of float64, hence of float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert_same_fit(mem, part, tmp_path, rtol=1e-12)


def test_without_target_equals_the_in_memory_fit(tmp_path):
    df, _ = credit_frame(1200)
    ddf = partitioned(df, [300, 1100])
    mem = credit_pipeline(sample_rows=500)
    expected = mem.fit_transform(ddf.compute(), **CREDIT_ARGS)
    part = credit_pipeline(sample_rows=500)
    np.testing.assert_array_equal(part.fit_transform_dask(ddf, **CREDIT_ARGS).compute(), expected)
    assert_same_fit(mem, part, tmp_path)
    assert mem.report()["columns"]["postcode"]["encoder"] == "frequency"


def suspects_frame(n: int = 2000, sample: int = 200) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """A frame whose "rare" column is constant and "twin" a duplicate of "a" on the screening sample
    only, with "zero" constant and "copy" a duplicate everywhere; the rows outside the sample that
    differ; the pipeline settings that screen on that sample."""
    rng = np.random.default_rng(1)
    outside = np.setdiff1d(np.arange(n), sample_rows(n, resolve_config(sample_rows=sample)))[[5, 1500]]
    a = rng.normal(size=n)
    df = pd.DataFrame({"a": a, "zero": 0.0, "rare": 0.0, "twin": a.copy(), "copy": a.copy()})
    df.loc[outside, "rare"] = 1.0
    df.loc[outside, "twin"] += 1.0
    return df, outside, dict(sample_rows=sample, correlation_threshold=None, clip="none")


def test_constant_and_duplicate_suspects_are_confirmed_on_every_partition(tmp_path):
    df, outside, cfg = suspects_frame()
    ddf = partitioned(df, [int(outside[0]), 1200])  # the first partition alone would look constant
    mem = FeaturePipeline(**cfg)
    expected = mem.fit_transform(ddf.compute())
    part = FeaturePipeline(**cfg)
    np.testing.assert_array_equal(part.fit_transform_dask(ddf).compute(), expected)
    assert_same_fit(mem, part, tmp_path)
    assert part.feature_names_ == ["a", "rare", "twin"]
    dropped = part.report()["dropped_features"]
    assert dropped["zero"]["reason"] == "constant" and dropped["copy"]["reason"] == "duplicate"


def test_identifier_columns_are_inferred_across_partitions():
    n = 600
    rng = np.random.default_rng(2)
    df = pd.DataFrame({
        "ref": [f"r{i:05d}" for i in range(n)],  # distinct everywhere: an id
        "batch": [f"b{i % 300:04d}" for i in range(n)],  # distinct within each partition, repeated across
        "x": rng.normal(size=n),
    })
    ddf = partitioned(df, [300])
    mem = FeaturePipeline(onehot_max_levels=5, high_cardinality=1000, medium_cardinality_encoder="frequency")
    mem.fit(ddf.compute())
    part = FeaturePipeline(onehot_max_levels=5, high_cardinality=1000, medium_cardinality_encoder="frequency")
    part.fit_dask(ddf)
    kinds = {c: r["kind"] for c, r in part.report()["columns"].items()}
    assert kinds == {c: r["kind"] for c, r in mem.report()["columns"].items()}
    assert kinds == {"ref": "id", "batch": "categorical", "x": "numeric"}


# -------------------------------------------------------------------------------------- report
def test_report_says_how_many_partitions_and_rows_were_fitted():
    df, y = credit_frame(600)
    part = credit_pipeline().fit_dask(partitioned(df, [100, 250]), y, **CREDIT_ARGS)
    assert part.report()["fitted_on"] == {"partitions": 3, "rows": 600}
    assert "fitted_on" not in credit_pipeline().fit(df, y, **CREDIT_ARGS).report()


# -------------------------------------------------------------------------------------- errors
def test_fit_dask_on_a_pandas_frame_names_the_type():
    df, y = credit_frame(200)
    with pytest.raises(DataError, match=r"expects a dask\.dataframe\.DataFrame, got pandas\..*DataFrame"):
        credit_pipeline().fit_dask(df, y)


@pytest.mark.parametrize("form", ["numpy", "dask-series"])
def test_target_of_another_length_names_both_lengths(form):
    df, y = credit_frame(300)
    ddf = partitioned(df, [100])
    short = y[:-7] if form == "numpy" else partitioned(pd.DataFrame({"y": y[:-7]}), [50]).y
    with pytest.raises(DataError, match="the target y has 293 values for 300 rows"):
        credit_pipeline().fit_dask(ddf, short, **CREDIT_ARGS)


def test_fit_dask_on_an_empty_frame_fails_clearly():
    df, y = credit_frame(200)
    with pytest.raises(DataError, match="empty frame"):
        credit_pipeline().fit_dask(partitioned(df.iloc[:0], [0]), y[:0], **CREDIT_ARGS)


def test_a_missing_target_value_in_a_partition_fails_clearly():
    df, y = credit_frame(300)
    bad = y.astype(float)
    bad[250] = np.nan
    target = partitioned(pd.DataFrame({"y": bad}), [100]).y
    with pytest.raises(DataError, match="missing or infinite"):
        credit_pipeline().fit_dask(partitioned(df, [100]), target, **CREDIT_ARGS)


# ------------------------------------------------------------------------------- real cluster
def test_distributed_cluster_gives_the_in_memory_fit(tmp_path):
    import dask
    from distributed import Client, LocalCluster

    df, y = credit_frame(1500)
    ddf = partitioned(df, [200, 900])
    mem = credit_pipeline(sample_rows=400, reduce="pca", n_components=5)
    expected = mem.fit_transform(ddf.compute(), y, **CREDIT_ARGS)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster):
        part = credit_pipeline(sample_rows=400, reduce="pca", n_components=5)
        got = part.fit_transform_dask(ddf, y, **CREDIT_ARGS).compute()
    np.testing.assert_array_equal(got, expected)
    assert_same_fit(mem, part, tmp_path)


def test_fold_ids_dealt_in_blocks_equal_the_in_memory_folds():
    from engine.features.categorical import fold_ids
    from engine.features.partitioned import _fold_ids_compact

    got = _fold_ids_compact(1000, 7, seed=3, block=64)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, fold_ids(1000, 7, 3))
