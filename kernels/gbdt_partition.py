"""Stable partition of tree nodes' rows by their splits (out of place, into a second buffer).

Node ``k`` of a batch owns positions ``starts[k] .. starts[k] + counts[k] - 1`` of the row-index array
``rows``. A row ``r`` goes left when ``bins_t[feature[k], r]`` is the missing bin (255) and
``missing_left[k]`` is set, or when it is a value bin ``<= split_bin[k]``. The call writes the node's
left rows, then its right rows, each in their previous order (stable: row indices stay ascending
when they were), to the same positions of ``out_rows``, and returns the number of left rows per node.

Writing to a second buffer avoids a copy back: a tree grower keeps a node at depth ``d`` in buffer
``d % 2``. Node ranges are disjoint, so partitioning one node never overwrites another live node.

The bins are read column-major (``bins_t`` is the ``(features, rows)`` transpose of the bin matrix):
a split reads one byte per row from one feature's column, which stays in cache.

Twins: :func:`partition_rows_reference` (NumPy), :func:`partition_rows_cpu` (``@njit(parallel=True)``)
and :func:`partition_rows_cuda` (``@cuda.jit``) give identical results (the order is deterministic).
The node ranges are cut into blocks of consecutive positions; pass 1 counts each block's left rows,
a scan per node turns the counts into each block's left and right write offsets, pass 2 writes each
block's rows in order (the CUDA twin scans per-thread counts in shared memory).
:func:`partition_rows` picks the twin from the namespace of ``rows``.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba import njit, prange

from kernels._cuda import launch, upload

__all__ = ["partition_rows", "partition_rows_cpu", "partition_rows_cuda", "partition_rows_reference"]

MISSING_BIN = 255


def _host(a: Any, dtype: Any) -> np.ndarray:
    from engine.backend import to_numpy

    return np.ascontiguousarray(to_numpy(a), dtype=dtype)


def partition_rows_reference(bins_t, rows, out_rows, starts, counts, feature, split_bin, missing_left) -> np.ndarray:
    """NumPy reference: boolean masks per node."""
    out = np.zeros(len(starts), np.int64)
    for k in range(len(starts)):
        s, c = int(starts[k]), int(counts[k])
        seg = rows[s : s + c]
        b = bins_t[int(feature[k]), seg]
        left = np.where(b == MISSING_BIN, bool(missing_left[k]), b <= int(split_bin[k]))
        out_rows[s : s + c] = np.concatenate([seg[left], seg[~left]])
        out[k] = int(left.sum())
    return out


# --------------------------------------------------------------------------------------- CPU twin
@njit(cache=True, inline="always")
def _goes_left(b, sb, ml):  # pragma: no cover - compiled
    # branch-free: a split bin is at most 254, so the missing bin 255 never passes ``b <= sb``
    return (b <= sb) | ((b == 255) & (ml != 0))


@njit(parallel=True, cache=True)
def _partition_cpu(bins_t, rows, out_rows, starts, counts, feature, split_bin, missing_left, block):  # pragma: no cover
    n_nodes = starts.shape[0]
    nblk = np.empty(n_nodes, np.int64)
    first = np.empty(n_nodes + 1, np.int64)
    first[0] = 0
    for k in range(n_nodes):
        nblk[k] = (counts[k] + block - 1) // block
        first[k + 1] = first[k] + nblk[k]
    n_tasks = first[n_nodes]
    t_node = np.empty(n_tasks, np.int64)
    t_lo = np.empty(n_tasks, np.int64)
    t_hi = np.empty(n_tasks, np.int64)
    for k in range(n_nodes):
        for j in range(nblk[k]):
            t = first[k] + j
            t_node[t] = k
            t_lo[t] = starts[k] + j * block
            t_hi[t] = min(starts[k] + (j + 1) * block, starts[k] + counts[k])
    n_left = np.zeros(n_tasks, np.int64)
    for t in prange(n_tasks):
        k = t_node[t]
        col = bins_t[feature[k]]
        sb = split_bin[k]
        ml = missing_left[k]
        c = 0
        for i in range(t_lo[t], t_hi[t]):
            c += _goes_left(col[np.uint64(rows[i])], sb, ml)
        n_left[t] = c
    left_off = np.empty(n_tasks, np.int64)
    right_off = np.empty(n_tasks, np.int64)
    out = np.zeros(n_nodes, np.int64)
    for k in range(n_nodes):
        acc = 0
        for t in range(first[k], first[k + 1]):
            left_off[t] = starts[k] + acc
            acc += n_left[t]
        out[k] = acc
        accr = 0
        for t in range(first[k], first[k + 1]):
            right_off[t] = starts[k] + acc + accr
            accr += (t_hi[t] - t_lo[t]) - n_left[t]
    for t in prange(n_tasks):
        k = t_node[t]
        col = bins_t[feature[k]]
        sb = split_bin[k]
        ml = missing_left[k]
        lo = left_off[t]
        ro = right_off[t]
        for i in range(t_lo[t], t_hi[t]):
            r = rows[i]
            left = _goes_left(col[np.uint64(r)], sb, ml)
            out_rows[np.uint64(lo if left else ro)] = r
            lo += left
            ro += 1 - left
    return out


def partition_rows_cpu(bins_t, rows, out_rows, starts, counts, feature, split_bin, missing_left, block: int = 16384) -> np.ndarray:
    """CPU twin (``@njit(parallel=True)``): blocks of positions in parallel in each pass."""
    from kernels.gbdt_launch import cpu_threads

    ct = _host(counts, np.int64)
    with cpu_threads(5.0 * ct.sum()):
        return _partition_cpu(
            bins_t, rows, out_rows, _host(starts, np.int64), ct,
            _host(feature, np.int64), _host(split_bin, np.int64), _host(missing_left, np.uint8), int(block),
        )


# -------------------------------------------------------------------------------------- CUDA twin
@functools.cache
def device_functions(threads: int, items: int):
    """``(goes_left, scatter_block)``: CUDA device functions shared with :mod:`kernels.gbdt_level`.

    ``scatter_block(bins_tf, colbase, sb, ml, rows, out_rows, lo, hi, left_at, right_at, sh)``, called
    by every thread of a block of ``threads``: the block's positions ``lo .. hi - 1`` (each thread
    ``items`` consecutive ones) go, in order, to ``out_rows`` from ``left_at`` (left rows) and
    ``right_at`` (right rows); ``bins_tf`` is the flat column-major bin matrix, the split feature's
    column starting at ``colbase``; ``sh`` is ``threads`` int64 of shared memory (the block scans its
    threads' left counts there, so every row's destination follows from its position alone).
    """
    from numba import uint64

    from kernels._cuda import cuda as _cuda

    global cuda  # module global: the CUDA simulator swaps it for its fake module
    cuda = _cuda()

    @cuda.jit(device=True)
    def goes_left(b, sb, ml):  # pragma: no cover - compiled
        if b == 255:
            return ml != 0
        return b <= sb

    @cuda.jit(device=True)
    def scatter_block(bins_tf, colbase, sb, ml, rows, out_rows, lo, hi, left_at, right_at, sh):  # pragma: no cover
        tid = cuda.threadIdx.x
        a = min(hi, lo + tid * items)
        e = min(hi, a + items)
        c = 0
        for i in range(a, e):
            if goes_left(bins_tf[colbase + uint64(rows[i])], sb, ml):
                c += 1
        sh[tid] = c
        cuda.syncthreads()
        off = 1
        while off < threads:  # inclusive scan of the left counts (Hillis-Steele, log2(threads) steps)
            v = sh[tid - off] if tid >= off else 0
            cuda.syncthreads()
            sh[tid] += v
            cuda.syncthreads()
            off *= 2
        before = sh[tid] - c  # this thread's left rows go after the earlier threads' ones
        pl = left_at + before
        pr = right_at + (a - lo) - before
        for i in range(a, e):
            r = rows[i]
            if goes_left(bins_tf[colbase + uint64(r)], sb, ml):
                out_rows[pl] = r
                pl += 1
            else:
                out_rows[pr] = r
                pr += 1

    return goes_left, scatter_block


@functools.cache
def _cuda_kernels(threads: int, items: int):
    from numba import int64, uint64

    from kernels._cuda import cuda as _cuda

    global cuda  # module global: the CUDA simulator swaps it for its fake module
    cuda = _cuda()
    goes_left, scatter_block = device_functions(threads, items)

    @cuda.jit
    def count(bins_tf, n_rows, rows, t_node, t_lo, t_hi, feature, split_bin, missing_left, n_left):  # pragma: no cover
        t = cuda.blockIdx.x
        k = t_node[t]
        colbase = uint64(feature[k]) * uint64(n_rows)
        sb = split_bin[k]
        ml = missing_left[k]
        c = 0
        for i in range(t_lo[t] + cuda.threadIdx.x, t_hi[t], cuda.blockDim.x):
            if goes_left(bins_tf[colbase + uint64(rows[i])], sb, ml):
                c += 1
        if c:
            cuda.atomic.add(n_left, t, int64(c))

    @cuda.jit
    def offsets(starts, first, t_lo, t_hi, n_left, left_off, right_off, out):  # pragma: no cover
        for k in range(cuda.grid(1), starts.shape[0], cuda.gridsize(1)):
            acc = 0
            for t in range(first[k], first[k + 1]):
                left_off[t] = starts[k] + acc
                acc += n_left[t]
            out[k] = acc
            accr = 0
            for t in range(first[k], first[k + 1]):
                right_off[t] = starts[k] + acc + accr
                accr += (t_hi[t] - t_lo[t]) - n_left[t]

    @cuda.jit
    def scatter(bins_tf, n_rows, rows, out_rows, t_node, t_lo, t_hi, feature, split_bin, missing_left, left_off, right_off):  # pragma: no cover
        sh = cuda.shared.array(threads, int64)
        t = cuda.blockIdx.x
        k = t_node[t]
        scatter_block(bins_tf, uint64(feature[k]) * uint64(n_rows), split_bin[k], missing_left[k], rows, out_rows,
                      t_lo[t], t_hi[t], left_off[t], right_off[t], sh)

    return count, offsets, scatter


def partition_rows_cuda(
    bins_t, rows, out_rows, starts, counts, feature, split_bin, missing_left, threads: int | None = None, items: int | None = None
) -> Any:
    """CUDA twin (``@cuda.jit``): a block per run of ``threads x items`` positions of one node.

    Each thread of the scatter pass owns ``items`` consecutive positions; the block scans the
    threads' left counts in shared memory, so every row's destination is fixed by its position alone
    (deterministic and stable). Node offsets are scanned by one thread per node.
    """
    from engine.backend import get_namespace
    from kernels._cuda import simulator
    from kernels.gbdt_launch import launch_blocks

    xp = get_namespace(rows)
    threads = threads or (32 if simulator() else 256)
    items = items or (2 if simulator() else 16)
    st = _host(starts, np.int64)
    ct = _host(counts, np.int64)
    n_nodes = len(st)
    out = xp.zeros(n_nodes, dtype=np.int64)
    chunk = threads * items
    nblk = (ct + chunk - 1) // chunk
    first = np.concatenate([[0], np.cumsum(nblk)]).astype(np.int64)
    node = np.repeat(np.arange(n_nodes, dtype=np.int64), nblk)
    if node.size == 0:
        return out
    j = np.arange(node.size, dtype=np.int64) - first[node]
    lo = st[node] + j * chunk
    hi = np.minimum(lo + chunk, st[node] + ct[node])
    count, offsets, scatter = _cuda_kernels(int(threads), int(items))
    d_node, d_lo, d_hi, d_feat, d_sb, d_ml, d_st, d_first = upload(
        xp, node, lo, hi, _host(feature, np.int64), _host(split_bin, np.int64), _host(missing_left, np.uint8), st, first
    )
    n_left = xp.zeros(node.size, dtype=np.int64)
    left_off = xp.empty(node.size, dtype=np.int64)
    right_off = xp.empty(node.size, dtype=np.int64)
    bins_tf, n_rows = bins_t.reshape(-1), int(bins_t.shape[1])  # flat: unsigned offsets in the kernels
    launch(count, node.size, threads, bins_tf, n_rows, rows, d_node, d_lo, d_hi, d_feat, d_sb, d_ml, n_left)
    nb = launch_blocks(n_nodes, threads)
    launch(offsets, nb, threads, d_st, d_first, d_lo, d_hi, n_left, left_off, right_off, out)
    launch(scatter, node.size, threads, bins_tf, n_rows, rows, out_rows, d_node, d_lo, d_hi, d_feat, d_sb, d_ml,
           left_off, right_off)
    return out


def partition_rows(
    bins_t: Any, rows: Any, out_rows: Any, starts: Any, counts: Any, feature: Any, split_bin: Any, missing_left: Any
) -> Any:
    """Partition each node's rows into ``out_rows``; return the number of left rows per node.

    Parameters
    ----------
    bins_t : (features, rows) uint8
        Column-major bin matrix.
    rows : (m,) int32
        Row indices partitioned by node.
    out_rows : (m,) int32
        Destination buffer; only the batch's node ranges are written.
    starts, counts : (K,) int
        Each node's range of positions.
    feature, split_bin, missing_left : (K,)
        Each node's split.

    Examples
    --------
    >>> bins_t = np.array([[3, 0, 255, 1]], np.uint8)
    >>> rows = np.arange(4, dtype=np.int32); out = np.empty_like(rows)
    >>> partition_rows(bins_t, rows, out, [0], [4], [0], [0], [1]).tolist(), out.tolist()
    ([2], [1, 2, 0, 3])
    """
    from engine.backend import get_namespace

    args = (bins_t, rows, out_rows, starts, counts, feature, split_bin, missing_left)
    if get_namespace(rows) is np:
        return partition_rows_cpu(*args)
    return partition_rows_cuda(*args)


def gpu_check(rows: int = 4_000_000, features: int = 20) -> dict:
    """For ``bench/gpu_check.py``: the CUDA twin against the CPU twin on 16 nodes (CuPy data)."""
    import cupy

    from kernels.gbdt_launch import cpu_timed, gpu_timed

    rng = np.random.default_rng(2)
    bins_t = rng.integers(0, 256, size=(features, rows), dtype=np.uint8)
    node = rng.integers(0, 16, size=rows)
    rows_idx = np.argsort(node, kind="stable").astype(np.int32)
    counts = np.bincount(node, minlength=16)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    feat = rng.integers(0, features, 16)
    sbin = rng.integers(0, 255, 16)
    ml = rng.integers(0, 2, 16).astype(np.uint8)
    out = np.empty_like(rows_idx)
    t_cpu, lc = cpu_timed(lambda: partition_rows_cpu(bins_t, rows_idx, out, starts, counts, feat, sbin, ml))
    d_bins, d_rows, d_out = cupy.asarray(bins_t), cupy.asarray(rows_idx), cupy.empty_like(cupy.asarray(rows_idx))
    t_gpu, dlc = gpu_timed(lambda: partition_rows_cuda(d_bins, d_rows, d_out, starts, counts, feat, sbin, ml))
    ok = bool(np.array_equal(cupy.asnumpy(dlc), lc) and np.array_equal(cupy.asnumpy(d_out), out))
    return {"ok": ok, "detail": f"{rows:,} rows in 16 nodes: identical {ok}; gpu {t_gpu*1e3:.2f} ms, cpu {t_cpu*1e3:.1f} ms",
            "gpu_s": t_gpu, "cpu_s": t_cpu}
