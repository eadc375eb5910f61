"""CUDA twins of the statistics kernels: under the simulator on tiny grids, and on a real GPU."""
from __future__ import annotations

import numpy as np
import pytest

from engine.backend import gpu_available

_COMMON = """
import numpy as np
from kernels.binned_stats import binned_stats_cpu, binned_stats_cuda, binned_stats_reference
from kernels.category_counts import category_counts_cpu, category_counts_cuda, category_counts_reference

def data(seed, n, f, dtype, order):
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.normal(0.5, 2.0, (n, f)), dtype=dtype, order=order)
    x[rng.random((n, f)) < 0.1] = np.nan
    x[0, 0], x[1, 0] = -1e6, 1e6
    edges = np.sort(rng.normal(0.5, 2.0, (f, 7)), axis=1)
    edges[f - 1, 4:] = np.nan  # ragged: the last column has 3 bins
    x[2:7, 0] = edges[0, 1:6].astype(dtype)  # values next to the edges (float32 rounds them)
    return x, edges, rng.normal(size=f)

def same_stats(a, b, rtol):
    for k in ("counts", "missing", "min", "max", "sum", "sumsq"):
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), rtol=rtol, atol=1e-9, err_msg=k)
"""


def test_binned_stats_cuda_twin_matches_cpu_and_reference(cudasim):
    proc = cudasim(
        _COMMON
        + """
for order, dtype, rtol in (("C", np.float32, 1e-6), ("F", np.float32, 1e-6), ("C", np.float64, 1e-12), ("F", np.float64, 1e-12)):
    x, edges, shift = data(1, 233, 5, dtype, order)
    gpu = binned_stats_cuda(x, edges, shift, blocks=3, threads=32)
    same_stats(gpu, binned_stats_cpu(x, edges, shift), rtol)
    same_stats(gpu, binned_stats_reference(x, edges, shift), rtol)
    assert gpu.counts.sum() + gpu.missing.sum() == x.size
print("ok")
"""
    )
    assert proc.stdout.strip().endswith("ok")


def test_binned_stats_cuda_many_bins_and_column_groups(cudasim):
    proc = cudasim(
        _COMMON
        + """
import kernels._cuda
rng = np.random.default_rng(2)
x = rng.normal(size=(150, 4))
x[rng.random(x.shape) < 0.1] = np.nan
many = np.sort(rng.normal(size=(4, 41)), axis=1)  # 40 bins: edges in shared memory, binary search
same_stats(binned_stats_cuda(x, many, blocks=2, threads=32), binned_stats_reference(x, many), 1e-12)
kernels._cuda.SHARED_BYTES = 1000  # one column per launch
same_stats(binned_stats_cuda(x, many, blocks=2, threads=32), binned_stats_reference(x, many), 1e-12)
kernels._cuda.SHARED_BYTES = 200   # histograms in global memory
same_stats(binned_stats_cuda(x, many, blocks=2, threads=32), binned_stats_reference(x, many), 1e-12)
print("ok")
"""
    )
    assert proc.stdout.strip().endswith("ok")


def test_binned_stats_cuda_pipelined_loop_and_exact_count_limit(cudasim):
    # one block of 32 threads on 3 columns: 10 rows a grid step, about 40 rows a thread, so the
    # software-pipelined loop runs several batches and a tail for every unroll
    proc = cudasim(
        _COMMON
        + """
import kernels.binned_stats as bs
x, edges, shift = data(4, 401, 3, np.float32, "C")
ref = binned_stats_reference(x, edges, shift)
for unroll in (1, 2, 3, 8):
    plan = bs.CudaBinnedStats(x, edges, shift, blocks=1, threads=32, unroll=unroll)
    plan.launch()
    plan.launch()  # (a timed plan runs again: the histograms restart from zero)
    same_stats(plan.result(), ref, 1e-6)
# counters are float32: a thread may count no more values of a column than EXACT_COUNT; a lower
# limit must widen the grid, not change the result
bs.EXACT_COUNT = 8
for order in ("C", "F"):
    xo = np.asarray(x, order=order)
    plan = bs.CudaBinnedStats(xo, edges, shift, blocks=1, threads=32)
    assert plan.launches[0][1] > 1, plan.launches[0][1]
    plan.launch()
    same_stats(plan.result(), ref, 1e-6)
try:
    bs.CudaBinnedStats(x, edges, unroll=0)
except ValueError as exc:
    assert "unroll" in str(exc)
else:
    raise AssertionError("unroll=0 accepted")
print("ok")
"""
    )
    assert proc.stdout.strip().endswith("ok")


def test_category_counts_cuda_twin_matches_cpu_and_reference(cudasim):
    proc = cudasim(
        _COMMON
        + """
import kernels._cuda
rng = np.random.default_rng(3)
k = np.array([3, 9, 1])
for order in ("C", "F"):
    codes = np.asarray(np.stack([rng.integers(-1, kj, 257) for kj in k], axis=1), dtype=np.int32, order=order)
    codes[5, 1], codes[6, 0] = 9, -3  # invalid
    ref = category_counts_reference(codes, k)
    for out in (category_counts_cuda(codes, k, blocks=3, threads=32), category_counts_cpu(codes, k)):
        for f in ("counts", "missing", "invalid"):
            np.testing.assert_array_equal(getattr(out, f), getattr(ref, f), err_msg=f)
# other code dtypes (compared as int64 or as int32), a strided row-major view, unsigned codes
base = np.ascontiguousarray(codes)
for c in (base.astype(np.int64), base.astype(np.int8), base[::3], np.where(base < 0, 7, base).astype(np.uint16)):
    ref = category_counts_reference(c, k)
    out = category_counts_cuda(c, k, blocks=2, threads=32)
    for f in ("counts", "missing", "invalid"):
        np.testing.assert_array_equal(getattr(out, f), getattr(ref, f), err_msg=f"{c.dtype} {f}")
kernels._cuda.SHARED_BYTES = 20  # counts in global memory
out = category_counts_cuda(codes, k, blocks=2, threads=32)
ref = category_counts_reference(codes, k)
for f in ("counts", "missing", "invalid"):
    np.testing.assert_array_equal(getattr(out, f), getattr(ref, f), err_msg=f)
print("ok")
"""
    )
    assert proc.stdout.strip().endswith("ok")


# ------------------------------------------------------------------------------ real GPU
_GPU, _WHY = gpu_available()
gpu = pytest.mark.skipif(not _GPU, reason=f"needs a CUDA GPU: {_WHY}")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("order", ["C", "F"])
def test_binned_stats_on_device_matches_cpu(order):
    import cupy

    from kernels.binned_stats import binned_stats, binned_stats_cpu

    rng = np.random.default_rng(0)
    x = np.asarray(rng.normal(size=(2_000_000, 20)), dtype=np.float32, order=order)
    x[rng.random(x.shape) < 0.01] = np.nan
    edges = np.quantile(rng.normal(size=(10_000, 20)), np.linspace(0, 1, 11), axis=0).T.copy()
    dev = binned_stats(cupy.asarray(x, order=order), edges).to_numpy()
    cpu = binned_stats_cpu(x, edges)
    np.testing.assert_array_equal(dev.counts, cpu.counts)
    np.testing.assert_array_equal(dev.missing, cpu.missing)
    np.testing.assert_allclose(dev.sumsq, cpu.sumsq, rtol=1e-9)


@pytest.mark.gpu
@gpu
def test_binned_stats_with_a_register_cap_matches_cpu():
    """Launch bounds and loads in flight change the register allocation (and may spill), never the results."""
    import cupy

    from kernels.binned_stats import CudaBinnedStats, binned_stats_cpu

    rng = np.random.default_rng(1)
    x = rng.normal(size=(1_000_000, 20)).astype(np.float32)
    x[rng.random(x.shape) < 0.01] = np.nan
    edges = np.quantile(rng.normal(size=(10_000, 20)), np.linspace(0, 1, 11), axis=0).T.copy()
    cpu = binned_stats_cpu(x, edges)
    for unroll, per_sm in ((8, 5), (4, 4), (16, None)):
        plan = CudaBinnedStats(cupy.asarray(x), edges, blocks_per_sm=per_sm, unroll=unroll)
        plan.launch()
        dev = plan.result().to_numpy()
        np.testing.assert_array_equal(dev.counts, cpu.counts)
        np.testing.assert_array_equal(dev.missing, cpu.missing)
        np.testing.assert_array_equal(dev.min, cpu.min)
        np.testing.assert_allclose(dev.sum, cpu.sum, rtol=1e-9, atol=1e-6)


@pytest.mark.gpu
@gpu
def test_category_counts_on_device_matches_cpu():
    import cupy

    from kernels.category_counts import category_counts, category_counts_cpu

    rng = np.random.default_rng(1)
    codes = rng.integers(-1, 40, (3_000_000, 5)).astype(np.int32)
    dev = category_counts(cupy.asarray(codes), 40).to_numpy()
    np.testing.assert_array_equal(dev.counts, category_counts_cpu(codes, 40).counts)


@pytest.mark.gpu
@gpu
def test_drift_report_on_cupy_equals_numpy():
    import cupy

    from engine.monitor import compare, fit_reference

    rng = np.random.default_rng(2)
    sk = fit_reference(rng.normal(size=(500_000, 8)).astype(np.float32))
    cur = rng.normal(0.1, 1.0, size=(500_000, 8)).astype(np.float32)
    host = compare(sk, cur).to_dict()
    dev = compare(sk, cupy.asarray(cur)).to_dict()
    for name, d in host["numeric"].items():
        assert dev["numeric"][name]["psi"] == pytest.approx(d["psi"], rel=1e-9)
        assert dev["numeric"][name]["mean_cur"] == pytest.approx(d["mean_cur"], rel=1e-9)
    assert dev["correlation"]["max_abs_diff"] == pytest.approx(host["correlation"]["max_abs_diff"], abs=1e-5)
