"""Gradient / hessian / count histograms of tree nodes over the uint8 bin matrix.

A batch of ``K`` nodes is built in one call. Node ``k`` owns the rows
``rows[starts[k] : starts[k] + counts[k]]`` (the row-index array is kept partitioned by node, see
:mod:`kernels.gbdt_partition`) and its histogram goes to slot ``slots[k]`` of a histogram pool::

    hist[slots[k], f, b, 0] = sum of gh[r, 0] over the node's rows r with bins[r, f] == b
    hist[slots[k], f, b, 1] = sum of gh[r, 1]
    hist[slots[k], f, b, 2] = number of such rows

for every active feature ``f`` in ``features`` and every bin ``b`` in 0..255 (255 = missing). ``gh``
holds each row's gradient and hessian side by side (float32), so a row's pair is one read. The pool
is ``(slots, features, 256, 3)`` float64; entries of inactive features are left untouched.
:func:`subtract_histograms` derives a sibling from its parent in place (``parent - child``): only the
smaller child of a split is ever built.

Twins
-----
:func:`build_histograms_reference` (NumPy ``bincount``), :func:`build_histograms_cpu`
(``@njit(parallel=True)``) and :func:`build_histograms_cuda` (``@cuda.jit``) compute the same sums
(up to float rounding: the CPU twin adds in float64 in row order per thread, the CUDA twin adds
float32 partial sums per block in shared memory and float64 atomics across blocks, so its low bits
vary between runs). :func:`build_histograms` picks the twin from the namespace of ``bins``.

CPU layout: the batch's rows are split into one contiguous range per thread (a range may cover
several small nodes or part of a large one). Each thread reads a row's 1-byte bins for all features
at once (row-major bins, prefetched a few rows ahead since a deep node's rows are scattered) and adds
into the node's histogram directly when it owns the whole node, or into a private copy for the at
most two nodes it shares with a neighbour; shared copies are added at the end, in thread order. The
sums therefore depend on the thread count only through float rounding, and not at all on scheduling.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from kernels._cuda import launch, upload

__all__ = [
    "CHANNELS",
    "N_BINS",
    "build_histograms",
    "build_histograms_cpu",
    "build_histograms_cuda",
    "build_histograms_reference",
    "new_pool",
    "subtract_histograms",
    "subtract_histograms_cpu",
    "subtract_histograms_cuda",
    "subtract_histograms_reference",
]

#: Bins per feature in a histogram (value bins and the missing bin 255).
N_BINS = 256
#: Channels per bin: gradient sum, hessian sum, row count.
CHANNELS = 3


def new_pool(n_slots: int, n_features: int, xp: Any = np) -> Any:
    """A zeroed ``(n_slots, n_features, 256, 3)`` float64 histogram pool in namespace ``xp``."""
    return xp.zeros((int(n_slots), int(n_features), N_BINS, CHANNELS), dtype=np.float64)


def _host(a: Any, dtype: Any) -> np.ndarray:
    from engine.backend import to_numpy

    return np.ascontiguousarray(to_numpy(a), dtype=dtype)


# ------------------------------------------------------------------------------------- reference
def build_histograms_reference(bins, gh, rows, starts, counts, slots, features, hist) -> np.ndarray:
    """NumPy reference: one ``bincount`` per node, feature and channel."""
    for k in range(len(starts)):
        r = rows[int(starts[k]) : int(starts[k]) + int(counts[k])]
        gk = gh[r, 0].astype(np.float64)
        hk = gh[r, 1].astype(np.float64)
        for f in features:
            b = bins[r, f]
            hist[slots[k], f, :, 0] = np.bincount(b, weights=gk, minlength=N_BINS)
            hist[slots[k], f, :, 1] = np.bincount(b, weights=hk, minlength=N_BINS)
            hist[slots[k], f, :, 2] = np.bincount(b, minlength=N_BINS)
    return hist


def subtract_histograms_reference(hist, parents, children, features) -> np.ndarray:
    """NumPy reference: ``hist[parents[k]] -= hist[children[k]]`` on the active features."""
    f = np.asarray(features)
    for p, c in zip(parents, children):
        hist[p, f] -= hist[c, f]
    return hist


# --------------------------------------------------------------------------------------- CPU twin
@intrinsic
def _prefetch(typingctx, arr, idx):  # pragma: no cover - compiled
    """Hint the CPU to load ``arr[idx]`` into cache (LLVM ``llvm.prefetch``, read, high locality)."""
    from llvmlite import ir

    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


#: Rows ahead whose bins the CPU twin prefetches (the rows of a deep node are scattered).
PREFETCH_DISTANCE = 16


@njit(cache=True, inline="always")
def _accumulate(bins, flat, gh, ghf, rows, lo, hi, features, dense, target):  # pragma: no cover - compiled
    """Add positions ``lo..hi`` to ``target`` (a node's flat ``(features * 256 * 3)`` histogram).
    Index arithmetic is unsigned: it spares Numba's negative-index checks in the innermost loop."""
    width = np.uint64(bins.shape[1])
    nf = features.shape[0]
    one = np.uint64(1)
    two = np.uint64(2)
    three = np.uint64(3)
    stride = np.uint64(768)
    ahead = hi - PREFETCH_DISTANCE
    for i in range(lo, hi):
        if i < ahead:
            q = np.uint64(rows[i + PREFETCH_DISTANCE])
            p = q * width
            _prefetch(flat, p)
            _prefetch(flat, p + width - one)
            _prefetch(ghf, two * q)
        r = np.uint64(rows[i])
        base = r * width
        gi = np.float64(ghf[two * r])
        hi_ = np.float64(ghf[two * r + one])
        if dense:
            off = np.uint64(0)
            for f in range(bins.shape[1]):
                k = off + np.uint64(flat[base + np.uint64(f)]) * three
                target[k] += gi
                target[k + one] += hi_
                target[k + two] += 1.0
                off += stride
        else:
            for jf in range(nf):
                f = np.uint64(features[jf])
                k = f * stride + np.uint64(flat[base + f]) * three
                target[k] += gi
                target[k + one] += hi_
                target[k + two] += 1.0


@njit(parallel=True, cache=True)
def _build_cpu(bins, gh, rows, starts, counts, slots, features, hist, nt):  # pragma: no cover - compiled
    flat = bins.reshape(-1)
    ghf = gh.reshape(-1)
    n_nodes = starts.shape[0]
    nf = features.shape[0]
    n_feat = hist.shape[1]
    dense = nf == n_feat
    cum = np.zeros(n_nodes + 1, np.int64)
    for k in range(n_nodes):
        cum[k + 1] = cum[k] + counts[k]
    total = cum[n_nodes]
    priv = np.zeros((nt if nt > 1 else 0, 2, n_feat, 256, 3))
    owner = np.full((nt, 2), -1, np.int64)
    for t in prange(nt):
        a = total * t // nt
        e = total * (t + 1) // nt
        k = np.searchsorted(cum, a, side="right") - 1
        while k < n_nodes and cum[k] < e:
            lo = max(a, cum[k])
            hi = min(e, cum[k + 1])
            p0 = starts[k] + (lo - cum[k])
            p1 = p0 + (hi - lo)
            if lo == cum[k] and hi == cum[k + 1]:
                _zero(hist, slots[k], features)
                _accumulate(bins, flat, gh, ghf, rows, p0, p1, features, dense, hist[slots[k]].reshape(-1))
            elif hi > lo:
                p = 0 if cum[k] < a else 1
                owner[t, p] = k
                _accumulate(bins, flat, gh, ghf, rows, p0, p1, features, dense, priv[t, p].reshape(-1))
            k += 1
    # nodes shared between threads: zeroed, then their private parts added in thread order
    for t in range(nt):
        for p in range(2):
            if owner[t, p] >= 0:
                _zero(hist, slots[owner[t, p]], features)
    for k in range(n_nodes):
        if counts[k] == 0:
            _zero(hist, slots[k], features)
    for t in range(nt):
        for p in range(2):
            k = owner[t, p]
            if k >= 0:
                s = slots[k]
                for jf in range(nf):
                    f = features[jf]
                    for b in range(256):
                        for c in range(3):
                            hist[s, f, b, c] += priv[t, p, f, b, c]


@njit(cache=True, inline="always")
def _zero(hist, s, features):  # pragma: no cover - compiled
    for jf in range(features.shape[0]):
        f = features[jf]
        for b in range(256):
            hist[s, f, b, 0] = 0.0
            hist[s, f, b, 1] = 0.0
            hist[s, f, b, 2] = 0.0


def build_histograms_cpu(bins, gh, rows, starts, counts, slots, features, hist) -> np.ndarray:
    """CPU twin (``@njit(parallel=True)``); see the module doc for the work split."""
    from kernels.gbdt_launch import cpu_threads

    ct = _host(counts, np.int64)
    fe = _host(features, np.int64)
    with cpu_threads(2.0 * ct.sum() * len(fe)) as nt:
        _build_cpu(bins, gh, rows, _host(starts, np.int64), ct, _host(slots, np.int64), fe, hist, nt)
    return hist


@njit(parallel=True, cache=True)
def _subtract_cpu(hist, parents, children, features):  # pragma: no cover - compiled
    nf = features.shape[0]
    for j in prange(parents.shape[0] * nf):
        k = j // nf
        f = features[j - k * nf]
        p = parents[k]
        c = children[k]
        for b in range(256):
            for ch in range(3):
                hist[p, f, b, ch] -= hist[c, f, b, ch]


def subtract_histograms_cpu(hist, parents, children, features) -> np.ndarray:
    """CPU twin: (node, feature) pairs in parallel."""
    from kernels.gbdt_launch import cpu_threads

    pa = _host(parents, np.int64)
    fe = _host(features, np.int64)
    with cpu_threads(1.0 * len(pa) * len(fe) * 768):
        _subtract_cpu(hist, pa, _host(children, np.int64), fe)
    return hist


# -------------------------------------------------------------------------------------- CUDA twin
#: Most features a histogram block holds (shared memory: 14 x 256 x 3 float32 = 42 KiB).
MAX_FEATURE_GROUP = 14


def feature_group(n_features: int) -> int:
    """Features per block of the CUDA histogram build: as few groups as shared memory allows
    (:data:`MAX_FEATURE_GROUP` features a block), split evenly, so each row's index and gradient pair
    are read once per group.

    >>> feature_group(20), feature_group(8), feature_group(30), feature_group(100)
    (10, 8, 10, 13)
    """
    n = max(1, int(n_features))
    groups = -(-n // MAX_FEATURE_GROUP)
    return -(-n // groups)


@functools.cache
def _cuda_kernels():
    """The zero and subtract kernels (the build kernel is :mod:`kernels.gbdt_level`'s ``build_level``)."""
    from kernels._cuda import cuda as _cuda

    global cuda  # module global: the CUDA simulator swaps it for its fake module
    cuda = _cuda()

    @cuda.jit
    def zero(hist, slots, features):  # pragma: no cover
        nf = features.shape[0]
        total = slots.shape[0] * nf * 768
        for t in range(cuda.grid(1), total, cuda.gridsize(1)):
            k = t // (nf * 768)
            rem = t - k * nf * 768
            jf = rem // 768
            e = rem - jf * 768
            hist[slots[k], features[jf], e // 3, e % 3] = 0.0

    @cuda.jit
    def subtract(hist, parents, children, features):  # pragma: no cover
        nf = features.shape[0]
        total = parents.shape[0] * nf * 768
        for t in range(cuda.grid(1), total, cuda.gridsize(1)):
            k = t // (nf * 768)
            rem = t - k * nf * 768
            jf = rem // 768
            e = rem - jf * 768
            f = features[jf]
            hist[parents[k], f, e // 3, e % 3] -= hist[children[k], f, e // 3, e % 3]

    return zero, subtract


def build_histograms_cuda(bins, gh, rows, starts, counts, slots, features, hist, threads: int | None = None, chunk: int | None = None) -> Any:
    """CUDA twin (``@cuda.jit``).

    Grid: x = blocks of ``chunk`` consecutive positions of one node (a node of ``c`` rows gets
    ``ceil(c / chunk)`` blocks), y = even groups of at most :data:`MAX_FEATURE_GROUP` active features
    (:func:`feature_group`). A block
    accumulates its rows' gradients and hessians for its features in float32 shared memory (a bin's
    pair in one 64-bit word, added by one compare-and-swap loop) and its counts as 32-bit integers
    (native atomic increments), then adds the non-empty bins to the node's float64 histogram with
    global atomics.
    The block table (slot, first and end position of each block) is built on the host from
    ``starts``, ``counts`` and ``slots``; the kernel is the level grower's
    (:func:`kernels.gbdt_level.level_kernels` ``build_level``), which reads the bins and gradient
    pairs through flat views (C-contiguous ``bins`` and ``gh`` are not copied).
    """
    from engine.backend import get_namespace
    from kernels._cuda import simulator
    from kernels.gbdt_launch import block_table, launch_blocks
    from kernels.gbdt_level import level_kernels

    xp = get_namespace(hist)
    threads = threads or (32 if simulator() else 256)
    chunk = chunk or (threads * 2 if simulator() else threads * 32)
    st = _host(starts, np.int64)
    ct = _host(counts, np.int64)
    fe = _host(features, np.int64)
    zero, _ = _cuda_kernels()
    if len(st) == 0 or len(fe) == 0:
        return hist
    sl = _host(slots, np.int64)
    node, bstart, bend = block_table(st, ct, chunk)
    d_slots, d_feat, d_bslot, d_bstart, d_bend, d_cnt = upload(
        xp, sl, fe, sl[node], bstart, bend, np.array([0, node.size], np.int64))
    launch(zero, launch_blocks(len(st) * len(fe) * 768, threads, 1024), threads, hist, d_slots, d_feat)
    if node.size:
        fg = feature_group(len(fe))
        groups = -(-len(fe) // fg)
        build = level_kernels(fg, threads, 2 if simulator() else 16).build_level
        launch(build, (node.size, groups), threads, bins.reshape(-1), int(bins.shape[1]), gh.reshape(-1), rows,
               d_bslot, d_bstart, d_bend, d_cnt, 0, d_feat, hist)
    return hist


def subtract_histograms_cuda(hist, parents, children, features, threads: int | None = None) -> Any:
    """CUDA twin: one thread per (node, feature, bin, channel) over a grid-stride loop."""
    from engine.backend import get_namespace
    from kernels._cuda import simulator
    from kernels.gbdt_launch import launch_blocks

    xp = get_namespace(hist)
    threads = threads or (32 if simulator() else 256)
    pa = _host(parents, np.int64)
    fe = _host(features, np.int64)
    if len(pa) == 0 or len(fe) == 0:
        return hist
    _, subtract = _cuda_kernels()
    blocks = launch_blocks(len(pa) * len(fe) * 768, threads, 4096)
    launch(subtract, blocks, threads, hist, *upload(xp, pa, _host(children, np.int64), fe))
    return hist


# ------------------------------------------------------------------------------------ dispatchers
def build_histograms(bins: Any, gh: Any, rows: Any, starts: Any, counts: Any, slots: Any, features: Any, hist: Any) -> Any:
    """Fill ``hist[slots[k]]`` with node ``k``'s histograms; the twin follows the namespace of ``bins``.

    Parameters
    ----------
    bins : (rows, features) uint8
        Bin matrix (:func:`kernels.gbdt_binning.apply_bins`).
    gh : (rows, 2) float32
        Each row's gradient and hessian.
    rows : (m,) int32
        Row indices, partitioned by node.
    starts, counts : (K,) int
        Each node's range of ``rows``.
    slots : (K,) int
        Each node's slot in ``hist`` (distinct).
    features : (nf,) int
        Active features (sorted, distinct).
    hist : (slots, features, 256, 3) float64
        Histogram pool, written in place and returned.

    Examples
    --------
    >>> bins = np.array([[0], [1], [1]], np.uint8)
    >>> gh = np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]], np.float32)
    >>> hist = new_pool(1, 1)
    >>> out = build_histograms(bins, gh, np.arange(3, dtype=np.int32), [0], [3], [0], [0], hist)
    >>> out[0, 0, :2].tolist()
    [[1.0, 1.0, 1.0], [5.0, 2.0, 2.0]]
    """
    from engine.backend import get_namespace

    if get_namespace(bins) is np:
        return build_histograms_cpu(bins, gh, rows, starts, counts, slots, features, hist)
    return build_histograms_cuda(bins, gh, rows, starts, counts, slots, features, hist)


def subtract_histograms(hist: Any, parents: Any, children: Any, features: Any) -> Any:
    """``hist[parents[k]] -= hist[children[k]]`` for the active features: the parent's slot then
    holds the sibling of ``children[k]``. The twin follows the namespace of ``hist``."""
    from engine.backend import get_namespace

    if get_namespace(hist) is np:
        return subtract_histograms_cpu(hist, parents, children, features)
    return subtract_histograms_cuda(hist, parents, children, features)


def gpu_check(rows: int = 4_000_000, features: int = 20) -> dict:
    """For ``bench/gpu_check.py``: the CUDA twin against the CPU twin on a root node and on a level of
    32 scattered nodes (CuPy data), with timings."""
    import cupy

    from kernels.gbdt_launch import cpu_timed, gpu_timed

    rng = np.random.default_rng(0)
    bins = rng.integers(0, 256, size=(rows, features), dtype=np.uint8)
    gh = rng.normal(size=(rows, 2)).astype(np.float32)
    feats = np.arange(features)
    out, detail = {}, []
    ok = True
    for label, rows_idx, starts, counts in (
        ("root", np.arange(rows, dtype=np.int32), np.array([0]), np.array([rows])),
        ("32 nodes", rng.permutation(rows).astype(np.int32)[: rows // 2], np.arange(32) * (rows // 64), np.full(32, rows // 64)),
    ):
        slots = np.arange(len(starts))
        cpu_pool = new_pool(len(starts), features)
        t_cpu, _ = cpu_timed(lambda: build_histograms_cpu(bins, gh, rows_idx, starts, counts, slots, feats, cpu_pool))
        d = (cupy.asarray(bins), cupy.asarray(gh), cupy.asarray(rows_idx))
        gpu_pool = new_pool(len(starts), features, cupy)
        t_gpu, _ = gpu_timed(lambda: build_histograms_cuda(d[0], d[1], d[2], starts, counts, slots, feats, gpu_pool))
        got = cupy.asnumpy(gpu_pool)
        diff = float(np.abs(got - cpu_pool).max())
        good = bool(np.allclose(got, cpu_pool, rtol=1e-5, atol=1e-3) and np.array_equal(got[..., 2], cpu_pool[..., 2]))
        ok &= good
        out[f"{label}_gpu_s"], out[f"{label}_cpu_s"], out[f"{label}_max_diff"] = t_gpu, t_cpu, diff
        n = int(counts.sum())
        detail.append(f"{label}: {n:,} rows x {features}: gpu {t_gpu*1e3:.2f} ms ({n*features/t_gpu/1e9:.1f} G upd/s), "
                      f"cpu {t_cpu*1e3:.0f} ms, max |diff| {diff:.1e}")
    return {"ok": ok, "detail": "; ".join(detail), **out}
