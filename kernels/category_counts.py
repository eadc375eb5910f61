"""Counts over dictionary-encoded categorical columns, all columns in one pass.

``codes`` is an integer matrix ``(rows, features)``: column ``j`` holds codes ``0 .. n_categories[j]-1``
and ``-1`` for a missing value. The result counts each code per column; codes outside
``[-1, n_categories[j])`` are counted as ``invalid`` (the dispatcher refuses them, naming the column).

Twins: :func:`category_counts_reference` (NumPy ``bincount`` per column), :func:`category_counts_cpu`
(``@njit(parallel=True)``, row chunks with partial counts) and :func:`category_counts_cuda`
(``@cuda.jit``, shared-memory counts per block, same row-major layout as
:func:`kernels.binned_stats.binned_stats_cuda`); :func:`category_counts` picks one from the array's
namespace. Partial results add (:meth:`CategoryCounts.merge`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from kernels._cuda import launch

__all__ = [
    "CategoryCounts",
    "category_counts",
    "category_counts_cpu",
    "category_counts_cuda",
    "category_counts_reference",
]


@dataclass(frozen=True)
class CategoryCounts:
    """Per-column code counts; arrays in the namespace of the input (NumPy or CuPy).

    Attributes
    ----------
    counts : (features, max_categories) int64
        ``counts[j, k]`` is the number of rows whose code in column ``j`` is ``k``.
    missing : (features,) int64
        Codes equal to -1.
    invalid : (features,) int64
        Codes below -1 or at least ``n_categories[j]``.
    n_rows : int
    """

    counts: Any
    missing: Any
    invalid: Any
    n_rows: int

    def merge(self, other: "CategoryCounts") -> "CategoryCounts":
        """Counts of the union of two disjoint row sets."""
        if self.counts.shape != other.counts.shape:
            raise ValueError(f"CategoryCounts.merge: shapes differ ({self.counts.shape} vs {other.counts.shape})")
        return CategoryCounts(
            self.counts + other.counts, self.missing + other.missing, self.invalid + other.invalid, self.n_rows + other.n_rows
        )

    def to_numpy(self) -> "CategoryCounts":
        from engine.backend import to_numpy

        return CategoryCounts(to_numpy(self.counts), to_numpy(self.missing), to_numpy(self.invalid), int(self.n_rows))


def _prepare(codes: Any, n_categories: Any) -> np.ndarray:
    from engine.backend import to_numpy

    if codes.ndim != 2:
        raise ValueError(f"codes: expected a 2-D (rows, features) matrix, got {codes.ndim} dimension(s)")
    if codes.dtype.kind not in "iu":
        raise TypeError(f"codes: expected an integer dtype, got {codes.dtype}")
    f = codes.shape[1]
    k = np.asarray(to_numpy(n_categories), dtype=np.int64).reshape(-1)
    if k.size == 1 and f != 1:
        k = np.full(f, int(k[0]), np.int64)
    if k.shape != (f,):
        raise ValueError(f"n_categories: expected one value or {f} values, got shape {k.shape}")
    if (k < 0).any():
        raise ValueError(f"n_categories: must be >= 0, got {k.tolist()}")
    return k


# ------------------------------------------------------------------------------------- reference
def category_counts_reference(codes: np.ndarray, n_categories: Any) -> CategoryCounts:
    """NumPy reference: ``np.bincount`` per column."""
    codes = np.asarray(codes)
    k = _prepare(codes, n_categories)
    n, f = codes.shape
    width = max(int(k.max()) if f else 0, 1)
    counts = np.zeros((f, width), np.int64)
    missing = np.zeros(f, np.int64)
    invalid = np.zeros(f, np.int64)
    for j in range(f):
        c = codes[:, j].astype(np.int64)
        ok = (c >= 0) & (c < k[j])
        missing[j] = int((c == -1).sum())
        invalid[j] = n - missing[j] - int(ok.sum())
        counts[j, : k[j]] = np.bincount(c[ok], minlength=k[j])
    return CategoryCounts(counts, missing, invalid, n)


# --------------------------------------------------------------------------------------- CPU twin
@njit(cache=True, nogil=True, inline="always")
def _cpu_chunk(codes, ncat, tile, start, stop, counts, missing, invalid):  # pragma: no cover - compiled
    f = codes.shape[1]
    for r0 in range(start, stop, tile):
        r1 = min(stop, r0 + tile)
        for j in range(f):
            kj = ncat[j]
            miss = 0
            bad = 0
            for i in range(r0, r1):
                v = np.int64(codes[i, j])
                if v >= 0 and v < kj:
                    counts[j, v] += 1
                elif v == -1:
                    miss += 1
                else:
                    bad += 1
            missing[j] += miss
            invalid[j] += bad


@njit(parallel=True, cache=True, nogil=True)
def _cpu_kernel(codes, ncat, width, n_chunks, tile):  # pragma: no cover - compiled
    n, f = codes.shape
    counts = np.zeros((n_chunks, f, width), np.int64)
    missing = np.zeros((n_chunks, f), np.int64)
    invalid = np.zeros((n_chunks, f), np.int64)
    per = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        start = min(n, c * per)
        stop = min(n, start + per)
        _cpu_chunk(codes, ncat, tile, start, stop, counts[c], missing[c], invalid[c])
    return counts, missing, invalid


@njit(cache=True, nogil=True)
def _cpu_kernel_serial(codes, ncat, width, tile):  # pragma: no cover - compiled
    f = codes.shape[1]
    counts = np.zeros((1, f, width), np.int64)
    missing = np.zeros((1, f), np.int64)
    invalid = np.zeros((1, f), np.int64)
    _cpu_chunk(codes, ncat, tile, 0, codes.shape[0], counts[0], missing[0], invalid[0])
    return counts, missing, invalid


#: Below this many codes a single thread is faster than starting the parallel region.
PARALLEL_MIN_VALUES = 1 << 18


def category_counts_cpu(codes: np.ndarray, n_categories: Any, n_chunks: int | None = None) -> CategoryCounts:
    """CPU twin (``@njit(parallel=True)``): row chunks in parallel with partial counts, then reduced.
    Inputs under :data:`PARALLEL_MIN_VALUES` codes run on one thread (unless ``n_chunks`` is given)."""
    k = _prepare(codes, n_categories)
    n, f = codes.shape
    width = max(int(k.max()) if f else 0, 1)
    if n_chunks is None and n * f < PARALLEL_MIN_VALUES:
        counts, missing, invalid = _cpu_kernel_serial(codes, k, width, 1024)
    else:
        if n_chunks is None:
            n_chunks = max(1, min(2 * numba.get_num_threads(), -(-n // 16384)))
        counts, missing, invalid = _cpu_kernel(codes, k, width, int(n_chunks), 1024)
    return CategoryCounts(counts.sum(0), missing.sum(0), invalid.sum(0), n)


# -------------------------------------------------------------------------------------- CUDA twin
#: Loads a CUDA thread keeps in flight (row-major layout): the next batch is loaded while one is counted.
UNROLL = 8

#: ``numba.cuda``, bound when the CUDA twin is first used (read as a global by the kernels so that
#: the CUDA simulator can substitute its own module).
cuda: Any = None


def _cuda_module() -> Any:
    from kernels._cuda import cuda as get_cuda

    return get_cuda()


@functools.cache
def _cuda_kernel(f: int, width: int, col_major: bool, shared_counts: bool, wide: bool = True):
    """CUDA kernel specialised at compile time for ``f`` columns of at most ``width`` categories.

    Row-major codes are read through a flat view ``cf`` (``row_stride`` codes a row, first column
    ``col0``) with unsigned running offsets, software pipelined: the next :data:`UNROLL` loads are
    issued before the current batch is counted. A code is tested without a branch around it (only
    the shared-memory increment is conditional). ``wide``: codes are compared as int64 (int64, uint32
    and uint64 codes), else as int32. Invalid codes are not counted here: they are what the valid
    counts and the missing ones leave of the rows.
    """
    from numba import int32, int64, uint32, uint64

    global cuda
    cuda = _cuda_module()
    nh = f * width if shared_counts else 1
    ct = int64 if wide else int32

    @cuda.jit(device=True)
    def tally(v, j, jbase, kmax, sh_counts, counts, miss):  # pragma: no cover - compiled
        # v and kmax (the column's largest valid code) of type ct; an int32 tally (Numba would widen it)
        if (v >= ct(0)) & (v <= kmax):
            if shared_counts:
                cuda.atomic.add(sh_counts, uint32(jbase + int32(v)), uint32(1))
            else:
                cuda.atomic.add(counts, (j, v), int64(1))
        return int32(miss + int32(v == ct(-1)))

    @cuda.jit
    def kernel(codes, cf, col0, row_stride, kmaxs, rows_per_step, counts, missing):  # pragma: no cover - compiled
        sh_counts = cuda.shared.array(nh, uint32)
        sh_miss = cuda.shared.array(f, int64)
        cur_b = cuda.local.array(UNROLL, ct)
        nxt_b = cuda.local.array(UNROLL, ct)
        tid = cuda.threadIdx.x
        bdim = cuda.blockDim.x
        if shared_counts:
            for t in range(tid, nh, bdim):
                sh_counts[t] = 0
        for t in range(tid, f, bdim):
            sh_miss[t] = 0
        cuda.syncthreads()
        n = codes.shape[0]
        g = cuda.grid(1)
        if not col_major:
            # row-major: thread g reads column g % f of rows g // f + k R (coalesced across a warp)
            r = rows_per_step
            if g < r * f:
                j = g % f
                i = g // f
                kmax = ct(kmaxs[j])
                jbase = int32(j * width)
                miss = int32(0)
                step = uint64(r) * uint64(row_stride)
                q = uint64(i) * uint64(row_stride) + uint64(col0 + j)
                if i + (UNROLL - 1) * r < n:
                    for u in range(UNROLL):
                        cur_b[u] = ct(cf[q])
                        q += step
                    i += UNROLL * r
                    while i + (UNROLL - 1) * r < n:
                        for u in range(UNROLL):  # the next batch is in flight while this one is counted
                            nxt_b[u] = ct(cf[q])
                            q += step
                        for u in range(UNROLL):
                            miss = tally(cur_b[u], j, jbase, kmax, sh_counts, counts, miss)
                            cur_b[u] = nxt_b[u]
                        i += UNROLL * r
                    for u in range(UNROLL):
                        miss = tally(cur_b[u], j, jbase, kmax, sh_counts, counts, miss)
                while i < n:
                    miss = tally(ct(cf[q]), j, jbase, kmax, sh_counts, counts, miss)
                    q += step
                    i += r
                cuda.atomic.add(sh_miss, j, int64(miss))
        elif n > 0:
            # column-major: grid-stride over the flat column-major index; flush on a column change
            stride = cuda.gridsize(1)
            j = g // n
            i = g - j * n
            cur = j
            miss = int32(0)
            while j < f:
                miss = tally(ct(codes[i, j]), j, int32(j * width), ct(kmaxs[j]), sh_counts, counts, miss)
                i += stride
                while i >= n:
                    i -= n
                    j += 1
                if j != cur:
                    cuda.atomic.add(sh_miss, cur, int64(miss))
                    miss = int32(0)
                    cur = j
        cuda.syncthreads()
        if shared_counts:
            for t in range(tid, nh, bdim):
                c = sh_counts[t]
                if c != 0:
                    cuda.atomic.add(counts, (t // width, t % width), int64(c))
        for t in range(tid, f, bdim):
            if sh_miss[t] != 0:
                cuda.atomic.add(missing, t, sh_miss[t])

    return kernel


def category_counts_cuda(codes: Any, n_categories: Any, blocks: int | None = None, threads: int | None = None) -> CategoryCounts:
    """CUDA twin (``@cuda.jit``); CuPy input gives CuPy output, NumPy input NumPy output.

    Row-major (C-contiguous) codes are the fast layout: thread ``g`` reads column ``g % features``,
    so a warp's reads are coalesced and each thread's missing tally stays in a register (other
    row-major strides are copied to C order first). Counts are per block in shared memory (32-bit
    atomics) and added to the global counts once per block; with too many categories for shared
    memory they go to global memory directly. Invalid codes are the rows neither counted nor missing.
    """
    from kernels._cuda import SHARED_BYTES, DeviceIO, grid_threads

    k = _prepare(codes, n_categories)
    n, f = codes.shape
    width = max(int(k.max()) if f else 0, 1)
    io = DeviceIO(codes)
    nblocks, nthreads = grid_threads(blocks, threads)
    d_codes = io.to_device(codes)
    counts = io.full((f, width), 0, np.int64)
    missing = io.full((f,), 0, np.int64)
    per_col = width * 4 + 8
    g = SHARED_BYTES // per_col
    shared_counts = g >= 1
    if not shared_counts:
        g = SHARED_BYTES // 8
    g = max(1, min(f, g, 1024))
    col_major = bool(f > 1 and d_codes.strides[0] < d_codes.strides[1])  # the layout on the device
    if not col_major and not d_codes.flags["C_CONTIGUOUS"]:
        d_codes = io.xp.ascontiguousarray(d_codes)  # (CuPy: NumPy input arrives contiguous)
    d_flat = d_codes.reshape(-1) if not col_major and d_codes.size else io.to_device(np.zeros(1, dtype=codes.dtype))
    wide = bool(codes.dtype.itemsize == 8 or codes.dtype == np.uint32)
    kmax = np.minimum(k - 1, np.iinfo(np.int64 if wide else np.int32).max)  # largest valid code per column
    for a in range(0, f, g):
        b = min(f, a + g)
        fg = b - a
        kernel = _cuda_kernel(fg, width, col_major, shared_counts, wide)
        if col_major:
            rows_per_step, launch_blocks = 0, nblocks
        else:
            rows_per_step = max(1, (nblocks * nthreads) // fg)
            launch_blocks = -(-(rows_per_step * fg) // nthreads)
        if n > 0:
            launch(
                kernel, launch_blocks, nthreads,
                d_codes[:, a:b] if fg != f else d_codes,
                d_flat,
                a,
                f,
                io.to_device(kmax[a:b]),
                rows_per_step,
                counts[a:b] if fg != f else counts,
                missing[a:b] if fg != f else missing,
            )
    if not io.on_cupy:
        _cuda_module().synchronize()
    counts, missing = io.result(counts), io.result(missing)
    return CategoryCounts(counts, missing, n - missing - counts.sum(axis=1), n)


# ------------------------------------------------------------------------------------- dispatcher
def category_counts(codes: Any, n_categories: Any, check: bool = True) -> CategoryCounts:
    """Count codes per column; the twin is chosen from ``codes``' namespace.

    Parameters
    ----------
    codes : (rows, features) or (rows,) integer array, NumPy or CuPy
        ``-1`` marks a missing value.
    n_categories : int or (features,) array
        Number of categories of each column.
    check : bool
        Raise when a code lies outside ``[-1, n_categories[j])``.

    Raises
    ------
    ValueError
        Naming the column and how many codes were out of range (with ``check``).

    Examples
    --------
    >>> import numpy as np
    >>> cc = category_counts(np.array([[0, 1], [2, -1], [0, 1]]), [3, 2])
    >>> cc.counts.tolist(), cc.missing.tolist()
    ([[2, 0, 1], [0, 2, 0]], [0, 1])
    """
    from engine.backend import get_namespace, to_numpy

    xp = get_namespace(codes)
    if codes.ndim == 1:
        codes = codes.reshape(-1, 1)
    if xp is np:
        out = category_counts_cpu(np.asarray(codes), n_categories)
    else:
        out = category_counts_cuda(codes, n_categories)
    if check:
        bad = to_numpy(out.invalid)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            k = _prepare(codes, n_categories)
            raise ValueError(f"codes[:, {j}]: {int(bad[j])} code(s) outside [-1, {int(k[j])}) (n_categories[{j}] = {int(k[j])})")
    return out
