"""One import point for Numba CUDA, plus the launch geometry and device I/O the CUDA twins share.

Importing this module imports neither Numba CUDA nor CuPy; :func:`cuda` does, on first use.

NumPy 2.5 removed ``np.row_stack``, which Numba CUDA's array overloads still reference when a kernel
is compiled; :func:`cuda` restores the alias (to ``np.vstack``, which it always was) before Numba CUDA
is imported, so every CUDA twin compiles on any NumPy the project supports.
"""
from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Any

import numpy as np

#: Threads per block of every CUDA twin (a multiple of the warp size).
THREADS = 256
#: Resident blocks per multiprocessor the launch aims for (8 x 256 = 2048 threads, the H100 maximum).
BLOCKS_PER_SM = 8
#: Static shared memory a kernel may use per block (bytes); 48 KiB is the portable limit.
SHARED_BYTES = 44 * 1024


def numpy_compat() -> None:
    """Restore the NumPy aliases Numba CUDA still references (``np.row_stack``)."""
    if not hasattr(np, "row_stack"):
        np.row_stack = np.vstack  # type: ignore[attr-defined]


@functools.cache
def cuda() -> ModuleType:
    """The ``numba.cuda`` module, imported after :func:`numpy_compat`."""
    numpy_compat()
    from numba import cuda as numba_cuda

    return numba_cuda


def simulator() -> bool:
    """True when Numba runs CUDA kernels on the CPU (``NUMBA_ENABLE_CUDASIM=1``)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


@functools.cache
def multiprocessors() -> int:
    """Number of streaming multiprocessors of the current device (1 under the simulator)."""
    if simulator():
        return 1
    dev = cuda().get_current_device()
    return int(getattr(dev, "MULTIPROCESSOR_COUNT", 1))


def grid_threads(blocks: int | None = None, threads: int | None = None) -> tuple[int, int]:
    """Launch geometry: ``(blocks, threads)``; by default enough blocks to fill every multiprocessor.

    Under the simulator the default is 4 blocks x 32 threads: the simulator runs one Python thread per
    CUDA thread.
    """
    if threads is None:
        threads = 32 if simulator() else THREADS
    if blocks is None:
        blocks = 4 if simulator() else multiprocessors() * BLOCKS_PER_SM
    if blocks < 1 or threads < 1:
        raise ValueError(f"blocks and threads must be >= 1, got blocks={blocks}, threads={threads}")
    return int(blocks), int(threads)


def is_cupy(a: Any) -> bool:
    return type(a).__module__.startswith("cupy")


class DeviceIO:
    """Moves a CUDA twin's inputs to the device and its outputs back to the caller's namespace.

    CuPy inputs stay on the device and outputs are CuPy arrays. NumPy inputs are copied to the device
    once and outputs come back as NumPy arrays (this is also how the simulator runs the twins).
    """

    def __init__(self, like: Any) -> None:
        self.on_cupy = is_cupy(like)
        if self.on_cupy:
            import cupy

            self.xp = cupy
        else:
            self.xp = np

    def to_device(self, a: Any) -> Any:
        if self.on_cupy:
            return self.xp.asarray(a)
        if type(a).__module__.startswith("numba"):
            return a
        return cuda().to_device(np.ascontiguousarray(a))

    def full(self, shape: tuple[int, ...], value: Any, dtype: Any) -> Any:
        if self.on_cupy:
            return self.xp.full(shape, value, dtype=dtype)
        return cuda().to_device(np.full(shape, value, dtype=dtype))

    def result(self, d: Any) -> Any:
        """A device output as an array of the caller's namespace."""
        if self.on_cupy:
            return d
        return d.copy_to_host()
