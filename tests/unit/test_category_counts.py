"""Categorical code counts: the CPU twin against the NumPy reference, invalid codes, merging."""
from __future__ import annotations

import numpy as np
import pytest

from kernels.category_counts import category_counts, category_counts_cpu, category_counts_reference


def _codes(rng, n=4000, k=(3, 7, 1, 12), dtype=np.int32, order="C"):
    k = np.asarray(k)
    c = np.stack([rng.integers(-1, kj, n) for kj in k], axis=1)
    return np.asarray(c, dtype=dtype, order=order), k


def _assert_same(a, b):
    for f in ("counts", "missing", "invalid"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_cpu_twin_equals_reference(dtype, order):
    codes, k = _codes(np.random.default_rng(1), dtype=dtype, order=order)
    ref = category_counts_reference(codes, k)
    _assert_same(category_counts_cpu(codes, k), ref)
    assert ref.counts.shape == (4, 12) and ref.counts[0, 3:].sum() == 0


def test_parallel_chunks_equal_single_thread():
    codes, k = _codes(np.random.default_rng(2))
    _assert_same(category_counts_cpu(codes, k, n_chunks=3), category_counts_cpu(codes, k))


def test_out_of_range_codes_are_counted_invalid():
    codes = np.array([[0, 1], [-2, 1], [3, -1], [2, 5]])
    out = category_counts_cpu(codes, [3, 2])
    assert out.invalid.tolist() == [2, 1]
    assert out.missing.tolist() == [0, 1]
    assert out.counts.tolist() == [[1, 0, 1], [0, 2, 0]]


def test_dispatcher_refuses_out_of_range_codes_naming_the_column():
    with pytest.raises(ValueError, match=r"codes\[:, 1\]: 1 code\(s\) outside \[-1, 2\)"):
        category_counts(np.array([[0, 1], [1, 2]]), [3, 2])


def test_dispatcher_accepts_one_column():
    out = category_counts(np.array([0, 0, 2, -1]), 3)
    assert out.counts.tolist() == [[2, 0, 1]] and out.missing.tolist() == [1]


def test_merge_of_halves_equals_whole():
    codes, k = _codes(np.random.default_rng(3))
    whole = category_counts_cpu(codes, k)
    merged = category_counts_cpu(codes[:1500], k).merge(category_counts_cpu(codes[1500:], k))
    _assert_same(merged, whole)
    assert merged.n_rows == whole.n_rows
