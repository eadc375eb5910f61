"""Fused binned statistics: the CPU twin against the NumPy reference, edge rules, merging."""
from __future__ import annotations

import numpy as np
import pytest

from kernels.binned_stats import (
    LINEAR_MAX,
    binned_stats,
    binned_stats_cpu,
    binned_stats_reference,
    edges_for,
    merge_binned_stats,
    prepare_edges,
)

FIELDS = ("counts", "missing", "min", "max", "sum", "sumsq")


def _data(rng, n=3000, f=6, dtype=np.float64, order="C", nan_share=0.1):
    x = np.asarray(rng.normal(1.0, 2.0, (n, f)), dtype=dtype, order=order)
    x[rng.random((n, f)) < nan_share] = np.nan
    return x


def _edges(rng, f=6, bins=8):
    return np.sort(rng.normal(1.0, 2.0, (f, bins + 1)), axis=1)


def _assert_same(a, b, rtol=1e-10):
    for k in FIELDS:
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), rtol=rtol, atol=1e-9, err_msg=k)
    assert a.n_rows == b.n_rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_cpu_twin_equals_reference(dtype, order):
    rng = np.random.default_rng(1)
    x = _data(rng, dtype=dtype, order=order)
    edges, shift = _edges(rng), rng.normal(size=6)
    ref = binned_stats_reference(x, edges, shift)
    _assert_same(binned_stats_cpu(x, edges, shift), ref, rtol=1e-6 if dtype == np.float32 else 1e-10)
    assert ref.counts.sum() + ref.missing.sum() == x.size


def test_parallel_chunks_equal_single_thread():
    rng = np.random.default_rng(2)
    x = _data(rng, n=5000)
    edges = _edges(rng)
    _assert_same(binned_stats_cpu(x, edges, n_chunks=3), binned_stats_cpu(x, edges))


def test_out_of_range_values_fall_in_first_and_last_bins():
    x = np.array([[-100.0], [0.0], [0.99], [1.0], [2.0], [3.0], [100.0], [-np.inf], [np.inf], [np.nan]])
    st = binned_stats_cpu(x, np.array([[0.0, 1.0, 2.0, 3.0]]))
    # bins [0,1) [1,2) [2,3]: below 0 -> first, at/above 2 (and above 3) -> last
    assert st.counts.tolist() == [[4, 1, 4]]
    assert st.missing.tolist() == [1]


def test_ragged_edges_padded_with_nan():
    rng = np.random.default_rng(3)
    x = _data(rng, f=2)
    edges = np.array([[-1.0, 0.0, 1.0, 2.0, 3.0], [0.0, 1.0, np.nan, np.nan, np.nan]])
    st = binned_stats_cpu(x, edges)
    ref = binned_stats_reference(x, edges)
    _assert_same(st, ref)
    assert st.counts[1, 1:].tolist() == [0, 0, 0] and st.counts[1, 0] == (~np.isnan(x[:, 1])).sum()


def test_many_bins_use_binary_search_with_same_result():
    rng = np.random.default_rng(4)
    x = _data(rng, f=3)
    edges = np.sort(rng.normal(1.0, 2.0, (3, LINEAR_MAX + 30)), axis=1)
    _assert_same(binned_stats_cpu(x, edges), binned_stats_reference(x, edges))


def test_float32_values_on_edges_bin_like_float64():
    # float64 edges that are not float32 numbers, and float32 data sitting right next to them
    e64 = np.array([0.1, 0.2, 0.30000000000000004, 0.7])
    e32 = e64.astype(np.float32)
    vals = np.concatenate([e32, np.nextafter(e32, np.float32(-1)), np.nextafter(e32, np.float32(2))])
    x = vals.reshape(-1, 1).astype(np.float32)
    edges = np.array([[0.0, *e64, 1.0]])
    assert binned_stats_cpu(x, edges).counts.tolist() == binned_stats_reference(x, edges).counts.tolist()
    assert (edges_for(prepare_edges(edges, 1)[0], np.float32).astype(np.float64) >= edges[:, 1:-1]).all()


def test_all_missing_column_has_empty_extremes():
    x = np.array([[np.nan, 1.0], [np.nan, 2.0]])
    st = binned_stats_cpu(x, np.array([[0.0, 1.0, 3.0]] * 2))
    assert st.min[0] == np.inf and st.max[0] == -np.inf and st.counts[0].sum() == 0 and st.missing[0] == 2


def test_merge_of_halves_equals_whole():
    rng = np.random.default_rng(5)
    x = _data(rng)
    edges, shift = _edges(rng), rng.normal(size=6)
    whole = binned_stats_cpu(x, edges, shift)
    parts = [binned_stats_cpu(x[:1000], edges, shift), binned_stats_cpu(x[1000:], edges, shift)]
    _assert_same(merge_binned_stats(parts), whole)


def test_merge_refuses_different_shifts():
    x = np.ones((4, 2))
    e = np.array([[0.0, 1.0, 2.0]] * 2)
    with pytest.raises(ValueError, match="shift"):
        binned_stats_cpu(x, e).merge(binned_stats_cpu(x, e, shift=[1.0, 1.0]))


def test_bad_edges_name_the_column():
    with pytest.raises(ValueError, match=r"edges\[1\]"):
        prepare_edges(np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 3.0]]), 2)


def test_dispatcher_converts_integers_and_uses_cpu_twin():
    x = np.array([[0, 5], [1, 6], [2, 7]], dtype=np.int64)
    st = binned_stats(x, np.array([[0.0, 1.0, 2.0], [5.0, 6.0, 7.0]]))
    assert st.counts.tolist() == [[1, 2], [1, 2]]
    assert st.sum.tolist() == [3.0, 18.0] and isinstance(st.counts, np.ndarray)


def test_cpu_twin_is_faster_than_per_column_searchsorted():
    rng = np.random.default_rng(6)
    x = _data(rng, n=200_000, f=20, dtype=np.float32, nan_share=0.02)
    edges = _edges(rng, f=20, bins=10)
    binned_stats_cpu(x[:50_000], edges, n_chunks=2)  # compile outside the timing
    t_cpu = min(_timed(lambda: binned_stats_cpu(x, edges)) for _ in range(3))
    t_ref = min(_timed(lambda: binned_stats_reference(x, edges)) for _ in range(2))
    assert t_cpu < t_ref, (t_cpu, t_ref)


def _timed(fn) -> float:
    import time

    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
