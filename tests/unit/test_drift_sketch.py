"""Reference sketches: what fit_reference records, and saving / loading without pickle."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from engine.errors import DataError
from engine.monitor import MonitorConfig, ReferenceSketch, fit_reference


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 6000
    df = pd.DataFrame(
        {
            "a": rng.normal(10.0, 2.0, n),
            "b": rng.exponential(1.0, n).astype(np.float32),
            "k": rng.integers(0, 50, n),
            "color": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
            "flag": rng.random(n) < 0.2,
            "when": pd.date_range("2024-01-01", periods=n, freq="min"),
        }
    )
    df.loc[rng.random(n) < 0.1, "a"] = np.nan
    df.loc[rng.random(n) < 0.05, "color"] = None
    df["c"] = df["a"] * 0.5 + rng.normal(0, 1, n)
    return df


@pytest.fixture(scope="module")
def sketch(frame) -> ReferenceSketch:
    return fit_reference(frame, bins=8)


def test_columns_are_inferred_from_dtypes(sketch):
    assert sketch.numeric == ["a", "b", "k", "c"]
    assert sketch.categorical == ["color", "flag"]
    assert "when" in sketch.skipped


def test_edges_are_reference_quantiles(frame, sketch):
    a = frame["a"].dropna().to_numpy()
    np.testing.assert_allclose(sketch.edges[0, :9], np.quantile(a, np.linspace(0, 1, 9)))
    assert sketch.counts[0].sum() == a.size
    assert sketch.missing[0] == frame["a"].isna().sum()


def test_tied_quantiles_merge_into_fewer_bins():
    df = pd.DataFrame({"z": np.r_[np.zeros(900), np.arange(100.0)]})
    sk = fit_reference(df, bins=10)
    assert sk.nbins(0) < 10 and sk.counts[0].sum() == 1000


def test_moments_and_correlation_match_pandas(frame, sketch):
    num = frame[sketch.numeric].astype(np.float64)
    np.testing.assert_allclose(sketch.mean, num.mean().to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(sketch.std, num.std().to_numpy(), rtol=1e-7)
    np.testing.assert_allclose(sketch.corr, num.corr().to_numpy(), atol=1e-6)


def test_categories_are_ordered_by_frequency_with_counts(frame, sketch):
    vc = frame["color"].value_counts()
    assert sketch.categories["color"] == vc.index.tolist()
    assert sketch.category_counts["color"].tolist() == vc.tolist()
    assert sketch.category_missing["color"] == frame["color"].isna().sum()
    assert sketch.frequencies("color") == pytest.approx(frame["color"].value_counts(normalize=True).to_dict())


def test_save_and_load_round_trip_without_pickle(tmp_path, sketch):
    sketch.save(tmp_path)
    with np.load(tmp_path / "sketch.npz", allow_pickle=False) as z:
        assert "edges" in z.files
    back = ReferenceSketch.load(tmp_path)
    for k in ("edges", "counts", "missing", "min", "max", "shift", "sum", "sumsq", "corr"):
        np.testing.assert_array_equal(getattr(back, k), getattr(sketch, k))
    assert back.categories == sketch.categories and back.categories["flag"] == [False, True]
    assert back.category_counts["color"].tolist() == sketch.category_counts["color"].tolist()
    assert back.numeric == sketch.numeric and back.n_rows == sketch.n_rows


def test_load_refuses_another_format_version(tmp_path, sketch):
    sketch.save(tmp_path)
    meta = json.loads((tmp_path / "sketch.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "sketch.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="format version 99"):
        ReferenceSketch.load(tmp_path)


def test_high_cardinality_inferred_column_is_skipped():
    df = pd.DataFrame({"id": [f"u{i}" for i in range(300)], "x": np.arange(300.0)})
    sk = fit_reference(df, config=MonitorConfig(max_categories=100))
    assert sk.categorical == [] and "max_categories" in sk.skipped["id"]


def test_high_cardinality_declared_column_is_an_error():
    df = pd.DataFrame({"id": [f"u{i}" for i in range(300)]})
    with pytest.raises(DataError, match="'id'.*more than 100"):
        fit_reference(df, categorical=["id"], config=MonitorConfig(max_categories=100))


def test_unknown_column_is_named():
    with pytest.raises(DataError, match=r"\['nope'\] not found"):
        fit_reference(pd.DataFrame({"x": [1.0, 2.0]}), numeric=["nope"])


def test_chunks_give_the_same_counts_as_one_frame(frame, sketch):
    num = ["a", "b", "k", "c"]
    edges = {n: sketch.edges[j, : sketch.nbins(j) + 1] for j, n in enumerate(num)}
    chunks = [frame.iloc[i : i + 1700] for i in range(0, len(frame), 1700)]
    sk = fit_reference(chunks, numeric=num, categorical=["color", "flag"], edges=edges)
    np.testing.assert_array_equal(sk.counts, sketch.counts)
    np.testing.assert_allclose(sk.corr, sketch.corr, atol=1e-9)
    assert sk.category_counts["color"].tolist() == sketch.category_counts["color"].tolist()


def test_dask_reference_gives_the_same_sketch_as_pandas(frame, sketch):
    import dask
    import dask.dataframe as dd

    with dask.config.set(scheduler="synchronous"):
        sk = fit_reference(dd.from_pandas(frame.drop(columns=["when"]), npartitions=3), bins=8)
    np.testing.assert_allclose(sk.edges, sketch.edges)
    np.testing.assert_array_equal(sk.counts, sketch.counts)
    np.testing.assert_allclose(sk.corr, sketch.corr, atol=1e-9)
    assert sk.categories == sketch.categories
