"""A stand-in for CuPy, for smoke runs of ``bench/gpu_check.py --smoke`` on a machine without a GPU.

Put this folder first on ``PYTHONPATH`` (with ``NUMBA_ENABLE_CUDASIM=1``) and ``import cupy`` gives
NumPy underneath: arrays are a NumPy subclass whose type lives in module ``cupy``, so the engine's
dispatchers pick their CUDA twins (run by the Numba simulator). It checks that the script's own code
runs; it measures nothing and proves nothing about a real GPU.
"""
from __future__ import annotations

import time
import types

import numpy as _np

__version__ = "0-standin"


class ndarray(_np.ndarray):  # noqa: N801 - CuPy's name
    def get(self) -> _np.ndarray:
        return _np.array(self, copy=True).view(_np.ndarray)


def _wrap(x):
    if isinstance(x, _np.ndarray) and not isinstance(x, ndarray):
        return x.view(ndarray)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    return x


def asarray(a, dtype=None, order=None):
    if hasattr(a, "copy_to_host"):  # a Numba (simulator) device array
        a = a.copy_to_host()
    return _np.asarray(a, dtype=dtype, order=order).view(ndarray)


def asnumpy(a):
    return _np.array(a, copy=True).view(_np.ndarray)


def __getattr__(name):
    fn = getattr(_np, name)
    if not callable(fn) or isinstance(fn, type):
        return fn

    def call(*args, **kw):
        return _wrap(fn(*args, **kw))

    return call


class _Device:
    def __init__(self, *_a) -> None:
        pass

    def synchronize(self) -> None:
        pass


class _Event:
    def __init__(self, *_a, **_k) -> None:
        self.t = 0.0

    def record(self, *_a) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass


class _Stream:
    def synchronize(self) -> None:
        pass


cuda = types.SimpleNamespace(Device=_Device, Event=_Event, get_current_stream=lambda: _Stream(),
                             get_elapsed_time=lambda a, b: (b.t - a.t) * 1e3)


class _Pool:
    def free_all_blocks(self) -> None:
        pass

    def used_bytes(self) -> int:
        return 0


def get_default_memory_pool() -> _Pool:
    return _Pool()


class _Generator:
    def __init__(self, seed=None) -> None:
        self._g = _np.random.default_rng(seed)

    def __getattr__(self, name):
        fn = getattr(self._g, name)
        return lambda *a, **k: _wrap(fn(*a, **k))


random = types.SimpleNamespace(default_rng=_Generator)


def _simulator_takes_arrays_as_device_memory() -> None:
    """Under the Numba CUDA simulator, hand these arrays to kernels as they are (strided views included),
    as CuPy arrays reach real kernels, instead of the simulator's copy in and out of host arrays (which
    needs contiguous, writable memory)."""
    import os

    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") != "1":
        return
    import numpy as np

    np.row_stack = getattr(np, "row_stack", np.vstack)
    from numba.cuda.simulator import kernel as sim_kernel
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    base = sim_kernel.InOut

    class InOut(base):  # type: ignore[misc, valid-type]
        def to_device(self, retr, stream=0):
            if isinstance(self.value, ndarray):
                return FakeCUDAArray(self.value, stream)
            return super().to_device(retr, stream)

    sim_kernel.InOut = InOut


_simulator_takes_arrays_as_device_memory()
