"""kernels._cuda: the one-copy upload of a level's small tables, and the direct kernel launch (checked
against Numba's dispatcher on a real GPU)."""
from __future__ import annotations

import numpy as np
import pytest

from engine.backend import gpu_available
from kernels._cuda import fast_launch_works, launch, upload
from tests.fake_device import DeviceArray, FakeDevice

_GPU, _WHY = gpu_available()
nbcuda = None  # numba.cuda, bound before the GPU test compiles its kernel (a module global, as in kernels/)


def _tables(rng):
    return (
        rng.integers(-(2**40), 2**40, 17),                       # int64
        rng.normal(size=(5, 3)),                                 # float64, 2-D
        rng.integers(0, 2, 9).astype(np.uint8),                  # 9 bytes: the next view starts 8-aligned
        np.empty(0, np.int64),                                   # empty
        np.asfortranarray(rng.normal(size=(4, 2))).astype(np.float32),  # F-ordered input, copied C-ordered
        rng.integers(0, 100, 3).astype(np.int32),
    )


def test_upload_makes_one_device_copy_and_keeps_every_value_dtype_and_shape():
    rng = np.random.default_rng(0)
    host = _tables(rng)
    calls = []

    class Counting(FakeDevice):
        def asarray(self, a, dtype=None):
            calls.append(np.asarray(a).nbytes)
            return FakeDevice.asarray(a, dtype)

    dev = upload(Counting(), *host)
    assert len(calls) == 1  # one host-to-device copy for all six
    assert calls[0] == sum(-(-a.nbytes // 8) * 8 for a in host)
    for h, d in zip(host, dev):
        assert isinstance(d, DeviceArray)
        assert d.dtype == h.dtype and d.shape == h.shape
        np.testing.assert_array_equal(np.asarray(d), h)
        assert d.ctypes.data % 8 == 0 or d.size == 0


def test_upload_to_numpy_returns_the_host_arrays():
    host = _tables(np.random.default_rng(1))
    out = upload(np, *host)
    for h, o in zip(host, out):
        assert type(o) is np.ndarray and o.flags.c_contiguous
        np.testing.assert_array_equal(o, h)


def test_without_cupy_or_a_gpu_every_launch_goes_through_the_dispatcher():
    # here there is no GPU: the direct path is off, so the CUDA twins keep Numba's own launch
    if not _GPU:
        assert fast_launch_works() is False


@pytest.mark.gpu
@pytest.mark.skipif(not _GPU, reason=f"needs a CUDA GPU: {_WHY}")
def test_direct_launch_passes_its_probe_and_matches_the_dispatcher_on_random_data():
    import cupy

    from kernels._cuda import cuda

    global nbcuda
    nbcuda = cuda()
    assert fast_launch_works(), "the direct launch failed its probe on this GPU"

    @nbcuda.jit
    def axpy(a, x, y, out, n):  # pragma: no cover - compiled
        i = nbcuda.grid(1)
        if i < n:
            out[i] = a * x[i, 1] + y[i]

    rng = np.random.default_rng(3)
    x = cupy.asarray(rng.normal(size=(10_001, 3)))
    y = cupy.asarray(rng.normal(size=10_001))[::1]
    want = cupy.zeros(10_001)
    axpy[40, 256](2.5, x, y, want, 10_001)
    for _ in range(3):  # first call: dispatcher (compiles, prepares); then direct
        got = cupy.zeros(10_001)
        launch(axpy, 40, 256, 2.5, x, y, got, 10_001)
        np.testing.assert_array_equal(cupy.asnumpy(got), cupy.asnumpy(want))


def test_bind_needs_the_direct_path():
    # without a GPU (or before an overload's first launch) there is nothing to bind: callers launch
    if not _GPU:
        from kernels._cuda import bind

        assert bind(object(), 1, 1, np.zeros(3)) is None


@pytest.mark.gpu
@pytest.mark.skipif(not _GPU, reason=f"needs a CUDA GPU: {_WHY}")
def test_a_bound_launch_repeats_the_launch_with_the_arrays_current_contents():
    import cupy

    from kernels._cuda import bind, cuda

    global nbcuda
    nbcuda = cuda()

    @nbcuda.jit
    def accumulate(x, out, n, scale):  # pragma: no cover - compiled
        i = nbcuda.grid(1)
        if i < n:
            out[i] += scale * x[i]

    rng = np.random.default_rng(4)
    x = cupy.asarray(rng.normal(size=5_000))
    out = cupy.zeros(5_000)
    assert bind(accumulate, 20, 256, x, out, 5_000, 0.5) is None  # not launched (compiled) yet
    launch(accumulate, 20, 256, x, out, 5_000, 0.5)
    call = bind(accumulate, 20, 256, x, out, 5_000, 0.5)
    assert call is not None
    x[:] = cupy.asarray(rng.normal(size=5_000))  # same memory, new values: the bound call reads them
    want = cupy.asnumpy(out) + 0.5 * cupy.asnumpy(x) * 2
    call()
    call()
    np.testing.assert_allclose(cupy.asnumpy(out), want, rtol=1e-12)
