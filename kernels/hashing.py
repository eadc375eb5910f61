"""Hashing of categorical values to buckets (the hot loop of the feature pipeline's hashing encoder).

The hash
--------
Seeded FNV-1a over the value's UTF-8 bytes (32-bit state starting at ``0x811C9DC5 ^ seed``; per byte
``h = (h ^ b) * 0x01000193 mod 2**32``), finished with MurmurHash3's ``fmix32`` so that ``h % n``
spreads well for any bucket count. ``bucket = hash % n_buckets``. It is stable across processes,
machines and versions (unlike Python's ``hash``), so a bucket learned offline is the bucket served.

Layout
------
Arrow-style: ``data`` is a flat uint8 buffer, ``offsets`` (int32 or int64, length ``n + 1``) delimits
value ``i`` as ``data[offsets[i]:offsets[i + 1]]``. A pandas / pyarrow string column hands over its
buffers without a copy; :func:`strings_to_buffer` builds them from Python strings.

Twins
-----
:func:`hash_bytes_reference` is the NumPy function of :mod:`engine.features.runtime` (the very one the
served pipeline runs); :func:`hash_bytes_cpu` is ``@njit(parallel=True)`` over values;
:func:`hash_bytes_cuda` is ``@cuda.jit`` (one thread per value, grid-stride). All three return the same
uint32 array; :func:`hash_bytes` picks the twin from the array's namespace (CuPy or Numba device
arrays -> CUDA, anything else -> CPU).
"""
from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np
from numba import njit, prange

from engine.features.runtime import FNV_OFFSET, FNV_PRIME, strings_to_buffer
from engine.features.runtime import hash_bytes as hash_bytes_reference
from kernels._cuda import launch

__all__ = [
    "hash_buckets",
    "hash_bytes",
    "hash_bytes_cpu",
    "hash_bytes_cuda",
    "hash_bytes_reference",
    "hash_strings",
    "strings_to_buffer",
]

_U64_PRIME = np.uint64(FNV_PRIME)
_U64_M32 = np.uint64(0xFFFFFFFF)
_U64_C1 = np.uint64(0x85EBCA6B)
_U64_C2 = np.uint64(0xC2B2AE35)
_S16 = np.uint64(16)
_S13 = np.uint64(13)


def _h0(seed: int) -> np.uint64:
    return np.uint64((FNV_OFFSET ^ (int(seed) & 0xFFFFFFFF)) & 0xFFFFFFFF)


def _check(data: Any, offsets: Any) -> None:
    if data.ndim != 1 or offsets.ndim != 1:
        raise ValueError("data and offsets must be 1-D")
    if data.dtype != np.uint8:
        raise ValueError(f"data must be uint8, got {data.dtype}")
    if offsets.dtype not in (np.int32, np.int64):
        raise ValueError(f"offsets must be int32 or int64, got {offsets.dtype}")
    if offsets.shape[0] < 1:
        raise ValueError("offsets must hold at least one entry (n + 1 for n values)")


@njit(parallel=True, cache=True)
def _hash_cpu_kernel(data, offsets, h0, out):  # pragma: no cover - compiled
    for i in prange(out.shape[0]):
        h = h0
        for j in range(offsets[i], offsets[i + 1]):
            h = ((h ^ np.uint64(data[j])) * _U64_PRIME) & _U64_M32
        h ^= h >> _S16
        h = (h * _U64_C1) & _U64_M32
        h ^= h >> _S13
        h = (h * _U64_C2) & _U64_M32
        h ^= h >> _S16
        out[i] = h


#: Serialises launches of the parallel CPU twin: Numba's default "workqueue" threading layer aborts
#: the process when two threads (e.g. Dask's threaded scheduler) launch parallel kernels at once.
_CPU_LAUNCH = threading.Lock()


def hash_bytes_cpu(data: np.ndarray, offsets: np.ndarray, seed: int = 0) -> np.ndarray:
    """CPU twin of :func:`hash_bytes_reference` (Numba, parallel over values)."""
    data = np.ascontiguousarray(data)
    offsets = np.ascontiguousarray(offsets)
    _check(data, offsets)
    out = np.empty(offsets.shape[0] - 1, dtype=np.uint32)
    if out.shape[0]:
        if data.shape[0] == 0:
            data = np.zeros(1, dtype=np.uint8)
        with _CPU_LAUNCH:
            _hash_cpu_kernel(data, offsets, _h0(seed), out)
    return out


#: numba.cuda, bound on first use (a module global, so the CUDA simulator can stand in for it).
cuda: Any = None


@functools.cache
def _cuda_kernel() -> Any:
    from kernels._cuda import cuda as _cuda

    global cuda
    cuda = _cuda()

    @cuda.jit
    def kernel(data, offsets, h0, out):  # pragma: no cover - compiled
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, out.shape[0], stride):
            h = h0
            for j in range(offsets[i], offsets[i + 1]):
                h = ((h ^ np.uint64(data[j])) * _U64_PRIME) & _U64_M32
            h ^= h >> _S16
            h = (h * _U64_C1) & _U64_M32
            h ^= h >> _S13
            h = (h * _U64_C2) & _U64_M32
            h ^= h >> _S16
            out[i] = h

    return kernel


def hash_bytes_cuda(data: Any, offsets: Any, seed: int = 0, blocks: int | None = None,
                    threads: int | None = None) -> Any:
    """CUDA twin of :func:`hash_bytes_reference`: one thread per value, grid-stride loop.

    CuPy inputs stay on the device and the result is a CuPy array; NumPy inputs are copied to the
    device and the result comes back as NumPy (this is how the simulator tests run it).
    """
    from kernels._cuda import DeviceIO, grid_threads

    _check(data, offsets)
    n = int(offsets.shape[0]) - 1
    io = DeviceIO(data)
    if n == 0:
        return io.xp.zeros(0, dtype=np.uint32)
    if int(data.shape[0]) == 0:
        data = io.xp.zeros(1, dtype=np.uint8)
    d_data = io.to_device(data)
    d_off = io.to_device(offsets)
    out = io.full((n,), 0, np.uint32)
    b, t = grid_threads(blocks, threads)
    launch(_cuda_kernel(), b, t, d_data, d_off, _h0(seed), out)
    return io.result(out)


def _on_device(a: Any) -> bool:
    return not isinstance(a, np.ndarray) and hasattr(a, "__cuda_array_interface__")


def hash_bytes(data: Any, offsets: Any, seed: int = 0) -> Any:
    """Hash every value of an Arrow-style (data, offsets) buffer on the twin matching its namespace."""
    if _on_device(data):
        return hash_bytes_cuda(data, offsets, seed)
    return hash_bytes_cpu(np.asarray(data), np.asarray(offsets), seed)


def hash_buckets(data: Any, offsets: Any, n_buckets: int, seed: int = 0) -> Any:
    """Bucket (int64 in ``[0, n_buckets)``) of every value: ``hash_bytes(...) % n_buckets``."""
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    h = hash_bytes(data, offsets, seed)
    return (h % np.uint32(n_buckets)).astype(np.int64)


def hash_strings(values: Any, seed: int = 0) -> np.ndarray:
    """Hash Python ``str`` / ``bytes`` values (UTF-8) with the CPU twin."""
    data, offsets = strings_to_buffer(values)
    return hash_bytes_cpu(data, offsets, seed)
