"""Binned statistics over every column of a float matrix in one pass.

For a matrix ``x`` of shape ``(rows, features)`` (float32 or float64, NaN = missing) and per-column bin
edges, one pass computes, per column: the histogram of the non-missing values, the number of missing
values, min, max, and the sum and sum of squares of ``x - shift``.

Binning rule
------------
Column ``j`` has ``nb`` bins on edges ``e_0 < e_1 < ... < e_nb``. Bin ``k`` holds the values ``v`` with
``e_k <= v < e_{k+1}``; values below ``e_0`` fall in the first bin and values at or above ``e_{nb-1}``
(including those above ``e_nb``) in the last one. Only the interior edges ``e_1 .. e_{nb-1}`` decide
the bin: ``bin(v) = #{k in 1..nb-1 : e_k <= v}``, i.e. ``np.searchsorted(e[1:nb], v, side="right")``.
``-inf`` goes to the first bin, ``+inf`` to the last; NaN is counted as missing and nowhere else.

Ragged edges
------------
``edges`` has shape ``(features, max_bins + 1)``. A column with fewer bins pads its edges at the end
with NaN: its number of bins is its number of leading finite edges minus one, and its histogram row
is zero beyond that.

Shift
-----
``sum`` and ``sumsq`` accumulate ``x - shift`` (``shift`` defaults to 0). Passing a value near the
column mean (the reference mean, for drift) keeps ``sumsq / n - (sum / n) ** 2`` accurate.

Twins
-----
:func:`binned_stats_reference` (NumPy, per column), :func:`binned_stats_cpu` (``@njit(parallel=True)``:
row chunks in parallel, each with its own partial histograms, reduced at the end) and
:func:`binned_stats_cuda` (``@cuda.jit``, see its docstring for the memory layout) return the same
:class:`BinnedStats`; :func:`binned_stats` picks the twin from the array's namespace. Partial results
merge exactly (:func:`merge_binned_stats`), so chunks and Dask partitions stream.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from kernels._cuda import launch

__all__ = [
    "BinnedStats",
    "CudaBinnedStats",
    "binned_stats",
    "binned_stats_cpu",
    "binned_stats_cuda",
    "binned_stats_reference",
    "merge_binned_stats",
    "prepare_edges",
]


@dataclass(frozen=True)
class BinnedStats:
    """Per-column binned statistics; arrays live in the namespace of the input (NumPy or CuPy).

    Attributes
    ----------
    counts : (features, max_bins) int64
        Histogram of the non-missing values.
    missing : (features,) int64
        Number of NaN values.
    min, max : (features,) float64
        Extremes of the non-missing values (``+inf`` / ``-inf`` for a column with none).
    sum, sumsq : (features,) float64
        Sum and sum of squares of ``x - shift`` over the non-missing values.
    shift : (features,) float64
        The shift the sums were taken around.
    n_rows : int
        Rows seen.
    """

    counts: Any
    missing: Any
    min: Any
    max: Any
    sum: Any
    sumsq: Any
    shift: Any
    n_rows: int

    @property
    def n_features(self) -> int:
        return int(self.counts.shape[0])

    @property
    def count(self) -> Any:
        """Non-missing values per column."""
        return self.n_rows - self.missing

    def merge(self, other: "BinnedStats") -> "BinnedStats":
        """Statistics of the union of the two row sets (same edges and shift required)."""
        return merge_binned_stats([self, other])

    def to_numpy(self) -> "BinnedStats":
        """The same statistics as NumPy arrays."""
        from engine.backend import to_numpy

        return BinnedStats(
            *(to_numpy(getattr(self, f)) for f in ("counts", "missing", "min", "max", "sum", "sumsq", "shift")),
            n_rows=int(self.n_rows),
        )


def merge_binned_stats(parts: list[BinnedStats]) -> BinnedStats:
    """Merge partial statistics of disjoint row sets: counts add, min of mins, max of maxes, sums add.

    Raises
    ------
    ValueError
        When the parts have different shapes or were accumulated around different shifts.
    """
    parts = list(parts)
    if not parts:
        raise ValueError("merge_binned_stats: nothing to merge")
    first = parts[0]
    for p in parts[1:]:
        if p.counts.shape != first.counts.shape:
            raise ValueError(f"merge_binned_stats: histogram shapes differ ({p.counts.shape} vs {first.counts.shape})")
        if p.shift is not first.shift and not bool((p.shift == first.shift).all()):
            raise ValueError("merge_binned_stats: parts were accumulated around different shifts")
    if len(parts) == 1:
        return first
    counts, missing = first.counts.copy(), first.missing.copy()
    mn, mx, s, ss = first.min.copy(), first.max.copy(), first.sum.copy(), first.sumsq.copy()
    for p in parts[1:]:
        counts += p.counts
        missing += p.missing
        s += p.sum
        ss += p.sumsq
        mn = _xp(mn).minimum(mn, p.min)
        mx = _xp(mx).maximum(mx, p.max)
    return BinnedStats(counts, missing, mn, mx, s, ss, first.shift, sum(int(p.n_rows) for p in parts))


def _xp(a: Any) -> Any:
    from engine.backend import get_namespace

    return get_namespace(a)


# ----------------------------------------------------------------------------------------- edges
def prepare_edges(edges: Any, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate bin edges and return ``(inner, nbins)`` for the twins.

    ``inner`` is ``(features, max_bins - 1)`` float64: each column's interior edges, padded with
    ``+inf``; ``nbins`` is ``(features,)`` int64. Edges are read on the host.

    Raises
    ------
    ValueError
        Naming the column whose edges are not a non-decreasing run of at least two finite values
        followed only by NaN padding.
    """
    from engine.backend import to_numpy

    e = np.asarray(to_numpy(edges), dtype=np.float64)
    if e.ndim == 1:
        e = np.broadcast_to(e, (n_features, e.shape[0]))
    if e.ndim != 2 or e.shape[0] != n_features:
        raise ValueError(f"edges: expected shape ({n_features}, bins + 1), got {e.shape}")
    if e.shape[1] < 2:
        raise ValueError(f"edges: each column needs at least 2 edges, got {e.shape[1]}")
    finite = ~np.isnan(e)
    nedges = finite.sum(axis=1)
    max_bins = e.shape[1] - 1
    col = np.arange(e.shape[1])
    bad = (nedges < 2) | (finite != (col < nedges[:, None])).any(axis=1)  # checked for all columns at once
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise ValueError(f"edges[{j}]: expected at least 2 finite edges followed only by NaN padding, got {e[j].tolist()}")
    with np.errstate(invalid="ignore"):
        falling = (np.diff(e, axis=1) < 0).any(axis=1)  # NaN padding compares False
    if falling.any():
        j = int(np.flatnonzero(falling)[0])
        raise ValueError(f"edges[{j}]: edges must be non-decreasing, got {e[j, : nedges[j]].tolist()}")
    nbins = (nedges - 1).astype(np.int64)
    inner = np.where(col[: max(max_bins - 1, 0)] < (nedges - 2)[:, None], e[:, 1:max_bins], np.inf)
    return inner, nbins


def _check_x(x: Any) -> None:
    if x.ndim != 2:
        raise ValueError(f"x: expected a 2-D (rows, features) matrix, got {x.ndim} dimension(s)")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x: expected float32 or float64, got {x.dtype}")


def _shift(shift: Any, n_features: int) -> np.ndarray:
    from engine.backend import to_numpy

    if shift is None:
        return np.zeros(n_features)
    s = np.asarray(to_numpy(shift), dtype=np.float64).reshape(-1)
    if s.shape != (n_features,):
        raise ValueError(f"shift: expected shape ({n_features},), got {s.shape}")
    return s


# ------------------------------------------------------------------------------------- reference
def binned_stats_reference(x: np.ndarray, edges: Any, shift: Any = None) -> BinnedStats:
    """NumPy reference: a per-column loop of ``searchsorted`` + ``bincount`` (the definition)."""
    x = np.asarray(x)
    _check_x(x)
    n, f = x.shape
    inner, nbins = prepare_edges(edges, f)
    sh = _shift(shift, f)
    width = inner.shape[1] + 1
    counts = np.zeros((f, width), np.int64)
    missing = np.zeros(f, np.int64)
    mn = np.full(f, np.inf)
    mx = np.full(f, -np.inf)
    s = np.zeros(f)
    ss = np.zeros(f)
    for j in range(f):
        col = x[:, j].astype(np.float64)
        ok = ~np.isnan(col)
        v = col[ok]
        missing[j] = n - v.size
        b = np.searchsorted(inner[j, : nbins[j] - 1], v, side="right")
        counts[j, : nbins[j]] = np.bincount(b, minlength=nbins[j])
        if v.size:
            mn[j], mx[j] = v.min(), v.max()
            d = v - sh[j]
            s[j], ss[j] = d.sum(), (d * d).sum()
    return BinnedStats(counts, missing, mn, mx, s, ss, sh, n)


# --------------------------------------------------------------------------------------- CPU twin
#: Up to this many interior edges per column a linear scan (vectorised) beats a binary search.
LINEAR_MAX = 64
#: Up to this many interior edges the CUDA twin keeps a thread's edges in registers.
REGISTER_EDGES = 16
#: Loads a CUDA thread keeps in flight (row-major float32; float64 half as many, for its registers):
#: the next batch is loaded while one is counted.
UNROLL = 8
#: A CUDA thread counts in float32 registers, exact up to this many values of one column.
EXACT_COUNT = 1 << 24


def edges_for(inner: np.ndarray, dtype: Any) -> np.ndarray:
    """Interior edges in the data's dtype, giving exactly the bins float64 comparisons give.

    For float32 data each edge is rounded up to the nearest float32: for a float32 ``v`` and any
    ``e``, ``e <= v`` holds exactly when ``roundup32(e) <= v``. float64 data uses the edges as they are.
    """
    if np.dtype(dtype) == np.float64:
        return np.ascontiguousarray(inner, dtype=np.float64)
    with np.errstate(over="ignore"):
        e32 = inner.astype(np.float32)
    low = e32.astype(np.float64) < inner
    e32[low] = np.nextafter(e32[low], np.float32(np.inf))
    return np.ascontiguousarray(e32)


@njit(cache=True, inline="always")
def _bin_linear(e, v, m):  # pragma: no cover - compiled
    b = 0
    for k in range(m):
        b += e[k] <= v
    return b


@njit(cache=True, inline="always")
def _bin_search(e, v, m):  # pragma: no cover - compiled
    base = 0
    n = m
    while n > 1:
        half = n >> 1
        if e[base + half] <= v:
            base += half
        n -= half
    if m > 0 and e[base] <= v:
        base += 1
    return base


@njit(cache=True, nogil=True, inline="always")
def _cpu_chunk(x, inner, nbins, shift, tile, start, stop, counts, missing, mins, maxs, sums, sumsq):  # pragma: no cover
    """Accumulate rows ``start:stop`` into one chunk's partial results (1-D / 2-D slices)."""
    f = x.shape[1]
    m = inner.shape[1]
    linear = m <= LINEAR_MAX
    for r0 in range(start, stop, tile):
        r1 = min(stop, r0 + tile)
        for j in range(f):
            e = inner[j]
            last = nbins[j] - 1
            sh = shift[j]
            mn = mins[j]
            mx = maxs[j]
            s = 0.0
            ss = 0.0
            miss = 0
            for i in range(r0, r1):
                v = x[i, j]
                if v != v:
                    miss += 1
                    continue
                if linear:
                    b = _bin_linear(e, v, m)
                else:
                    b = _bin_search(e, v, m)
                if b > last:
                    b = last
                counts[j, b] += 1
                d = np.float64(v)
                if d < mn:
                    mn = d
                if d > mx:
                    mx = d
                d -= sh
                s += d
                ss += d * d
            mins[j] = mn
            maxs[j] = mx
            sums[j] += s
            sumsq[j] += ss
            missing[j] += miss


@njit(cache=True, nogil=True)
def _cpu_alloc(n_chunks, f, width):  # pragma: no cover - compiled
    return (
        np.zeros((n_chunks, f, width), np.int64),
        np.zeros((n_chunks, f), np.int64),
        np.full((n_chunks, f), np.inf),
        np.full((n_chunks, f), -np.inf),
        np.zeros((n_chunks, f)),
        np.zeros((n_chunks, f)),
    )


@njit(parallel=True, cache=True, nogil=True)
def _cpu_kernel(x, inner, nbins, shift, n_chunks, tile):  # pragma: no cover - compiled
    n, f = x.shape
    counts, missing, mins, maxs, sums, sumsq = _cpu_alloc(n_chunks, f, inner.shape[1] + 1)
    per = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        start = min(n, c * per)
        stop = min(n, start + per)
        _cpu_chunk(x, inner, nbins, shift, tile, start, stop, counts[c], missing[c], mins[c], maxs[c], sums[c], sumsq[c])
    return counts, missing, mins, maxs, sums, sumsq


@njit(cache=True, nogil=True)
def _cpu_kernel_serial(x, inner, nbins, shift, tile):  # pragma: no cover - compiled
    n, f = x.shape
    counts, missing, mins, maxs, sums, sumsq = _cpu_alloc(1, f, inner.shape[1] + 1)
    _cpu_chunk(x, inner, nbins, shift, tile, 0, n, counts[0], missing[0], mins[0], maxs[0], sums[0], sumsq[0])
    return counts, missing, mins, maxs, sums, sumsq


#: Below this many values a single thread is faster than starting the parallel region.
PARALLEL_MIN_VALUES = 1 << 18


def binned_stats_cpu(x: np.ndarray, edges: Any, shift: Any = None, n_chunks: int | None = None) -> BinnedStats:
    """CPU twin (``@njit(parallel=True)``): row chunks run in parallel, each filling its own partial
    histograms and moments, which are then reduced. Each chunk is read in tiles of rows, column by
    column, so C- and F-ordered matrices are both read from cache; a value's bin is found by a
    vectorised scan of the interior edges (a binary search above :data:`LINEAR_MAX` edges). Inputs
    under :data:`PARALLEL_MIN_VALUES` values run on one thread (unless ``n_chunks`` is given).
    """
    _check_x(x)
    n, f = x.shape
    inner, nbins = prepare_edges(edges, f)
    sh = _shift(shift, f)
    inner_x = edges_for(inner, x.dtype)
    if n_chunks is None and n * f < PARALLEL_MIN_VALUES:
        out = _cpu_kernel_serial(x, inner_x, nbins, sh, 512)
    else:
        if n_chunks is None:
            n_chunks = max(1, min(2 * numba.get_num_threads(), -(-n // 8192)))
        out = _cpu_kernel(x, inner_x, nbins, sh, int(n_chunks), 512)
    counts, missing, mins, maxs, sums, sumsq = out
    return BinnedStats(counts.sum(0), missing.sum(0), mins.min(0), maxs.max(0), sums.sum(0), sumsq.sum(0), sh, n)


# -------------------------------------------------------------------------------------- CUDA twin
#: ``numba.cuda``, bound when a CUDA twin is first used. The kernels read it as a module global so
#: that the CUDA simulator can substitute its own module while they run.
cuda: Any = None


def _cuda_module() -> Any:
    from kernels._cuda import cuda as get_cuda

    return get_cuda()


@functools.cache
def _cuda_kernel(f: int, m: int, dtype: str, col_major: bool, shared_hist: bool, flat: bool = False,
                 bounds: tuple[int, int] | None = None, unroll: int = UNROLL):
    """CUDA kernel specialised at compile time for ``f`` columns with ``m`` interior edges each.

    ``bounds``: launch bounds ``(threads a block, blocks a multiprocessor)`` that cap the registers
    (65,536 / (threads x blocks)) so that many blocks fit; None leaves the registers to the compiler.

    ``flat``: the row-major loop reads the matrix through a flat view ``xf`` (unit column stride,
    ``row_stride`` elements a row, first column ``col0``) with unsigned running offsets: one 64-bit
    add a load instead of a signed 2-D index computation (multiply, negative-index fix-up) per value.
    """
    from numba import float32, float64, int32, int64, uint32, uint64

    global cuda
    cuda = _cuda_module()
    edt = float32 if dtype == "float32" else float64
    width = m + 1
    reg = m <= REGISTER_EDGES
    shared_edges = shared_hist and not reg and m > 0
    mr = max(m, 1)
    nh = f * width if shared_hist else 1
    ne = f * m if shared_edges else 1
    inf = math.inf

    @cuda.jit(device=True)
    def bin_search(edges, base, v):  # pragma: no cover - compiled
        lo = 0
        n = m
        while n > 1:
            half = n >> 1
            if edges[base + lo + half] <= v:
                lo += half
            n -= half
        if m > 0 and edges[base + lo] <= v:
            lo += 1
        return lo

    @cuda.jit(device=True)
    def load_edges(e, inner_flat, j):  # pragma: no cover - compiled
        if reg:
            for k in range(m):
                e[k] = inner_flat[j * m + k]

    @cuda.jit(device=True)
    def visit(raw, j, e, ge, sh_edges, inner_flat, sh_hist, hist, last, shv, mn, mx, s, ss, miss):  # pragma: no cover
        if reg:
            # Branch-free (a NaN compares false with every edge and is masked out of the moments):
            # no histogram atomic per value, each edge's count of the values at or above it is a
            # register; min and max are kept in the data's dtype (exact for float32).
            ok = raw == raw
            for k in range(m):
                ge[k] += float32(e[k] <= raw)
            d = float64(raw) - shv if ok else 0.0
            mn = raw if raw < mn else mn
            mx = raw if raw > mx else mx
            return mn, mx, s + d, ss + d * d, miss + float32(raw != raw)  # (a float32 count, as ge)
        if raw != raw:
            return mn, mx, s, ss, miss + float32(1.0)
        if shared_edges:
            b = bin_search(sh_edges, j * m, raw)
        else:
            b = bin_search(inner_flat, j * m, raw)
        if b > last:
            b = last
        if shared_hist:
            cuda.atomic.add(sh_hist, j * width + b, uint32(1))
        else:
            cuda.atomic.add(hist, (j, b), int64(1))
        d = float64(raw) - shv
        mn = raw if raw < mn else mn
        mx = raw if raw > mx else mx
        return mn, mx, s + d, ss + d * d, miss

    @cuda.jit(device=True)
    def rows_seen(i0, r, n):  # pragma: no cover - compiled
        # rows i0, i0 + r, i0 + 2r, ... below n
        return (n - i0 + r - 1) // r if i0 < n else 0

    @cuda.jit(device=True)
    def add_count(sh_hist, hist, j, b, c):  # pragma: no cover - compiled
        if c != 0:
            if shared_hist:
                cuda.atomic.add(sh_hist, j * width + b, uint32(c))
            else:
                cuda.atomic.add(hist, (j, b), int64(c))

    @cuda.jit(device=True)
    def flush_ge(ge, valid, j, last, sh_hist, hist):  # pragma: no cover - compiled
        # bin k < last holds the values with exactly k edges at or below them: ge[k-1] - ge[k]
        # (ge[-1] = all valid values); bin ``last`` the rest, ge[last-1]. Then reset.
        prev = valid
        for k in range(m):
            if k < last:
                add_count(sh_hist, hist, j, k, prev - int32(ge[k]))
                prev = int32(ge[k])
            ge[k] = 0.0
        add_count(sh_hist, hist, j, last, prev)

    jit = cuda.jit(launch_bounds=bounds) if bounds else cuda.jit  # (the simulator takes no bounds)

    @jit
    def kernel(x, xf, col0, row_stride, inner_flat, nbins, shift, rows_per_step, hist, p_min, p_max, p_sum, p_sumsq, p_miss):  # pragma: no cover
        sh_hist = cuda.shared.array(nh, uint32)
        sh_edges = cuda.shared.array(ne, edt)
        sh_min = cuda.shared.array(f, float64)
        sh_max = cuda.shared.array(f, float64)
        sh_sum = cuda.shared.array(f, float64)
        sh_sumsq = cuda.shared.array(f, float64)
        sh_miss = cuda.shared.array(f, int64)
        e = cuda.local.array(mr, edt)
        ge = cuda.local.array(mr, float32)
        for k in range(mr):
            ge[k] = 0.0
        buf = cuda.local.array(unroll, edt)
        nxt = cuda.local.array(unroll, edt)
        tid = cuda.threadIdx.x
        bdim = cuda.blockDim.x
        if shared_hist:
            for t in range(tid, nh, bdim):
                sh_hist[t] = 0
        if shared_edges:
            for t in range(tid, ne, bdim):
                sh_edges[t] = inner_flat[t]
        for t in range(tid, f, bdim):
            sh_min[t] = inf
            sh_max[t] = -inf
            sh_sum[t] = 0.0
            sh_sumsq[t] = 0.0
            sh_miss[t] = 0
        cuda.syncthreads()

        n = x.shape[0]
        g = cuda.grid(1)
        if not col_major:
            # Row-major: thread g always reads column g % f of rows g // f, + R, + 2R, ...: a warp
            # reads consecutive addresses (coalesced) and each thread keeps one column's edges and
            # moments in registers; unroll loads are in flight before they are used.
            r = rows_per_step
            if g < r * f:
                j = g % f
                i = g // f
                load_edges(e, inner_flat, j)
                last = nbins[j] - 1
                shv = shift[j]
                mn = edt(inf)
                mx = edt(-inf)
                s = 0.0
                ss = 0.0
                miss = float32(0.0)
                if flat:
                    step = uint64(r) * uint64(row_stride)
                    q = uint64(i) * uint64(row_stride) + uint64(col0 + j)
                    if i + (unroll - 1) * r < n:
                        # Software pipelined: the next unroll loads are issued before this batch is
                        # counted, so they are in flight while it is (the compiler cannot sink
                        # them past the loop's back edge).
                        for u in range(unroll):
                            buf[u] = xf[q]
                            q += step
                        i += unroll * r
                        while i + (unroll - 1) * r < n:
                            for u in range(unroll):
                                nxt[u] = xf[q]
                                q += step
                            for u in range(unroll):
                                mn, mx, s, ss, miss = visit(buf[u], j, e, ge, sh_edges, inner_flat, sh_hist, hist, last, shv, mn, mx, s, ss, miss)
                                buf[u] = nxt[u]
                            i += unroll * r
                        for u in range(unroll):
                            mn, mx, s, ss, miss = visit(buf[u], j, e, ge, sh_edges, inner_flat, sh_hist, hist, last, shv, mn, mx, s, ss, miss)
                    while i < n:
                        mn, mx, s, ss, miss = visit(xf[q], j, e, ge, sh_edges, inner_flat, sh_hist, hist, last, shv, mn, mx, s, ss, miss)
                        q += step
                        i += r
                else:
                    while i + (unroll - 1) * r < n:
                        for u in range(unroll):  # all loads issued before the first is used
                            buf[u] = x[i + u * r, j]
                        for u in range(unroll):
                            mn, mx, s, ss, miss = visit(buf[u], j, e, ge, sh_edges, inner_flat, sh_hist, hist, last, shv, mn, mx, s, ss, miss)
                        i += unroll * r
                    while i < n:
                        mn, mx, s, ss, miss = visit(x[i, j], j, e, ge, sh_edges, inner_flat, sh_hist, hist, last, shv, mn, mx, s, ss, miss)
                        i += r
                if reg:
                    flush_ge(ge, rows_seen(g // f, r, n) - int32(miss), j, last, sh_hist, hist)
                cuda.atomic.min(sh_min, j, float64(mn))
                cuda.atomic.max(sh_max, j, float64(mx))
                cuda.atomic.add(sh_sum, j, s)
                cuda.atomic.add(sh_sumsq, j, ss)
                cuda.atomic.add(sh_miss, j, int64(miss))
        elif n > 0:
            # Column-major: a grid-stride loop over the flat column-major index (coalesced); a thread
            # flushes its registers when it crosses into the next column.
            stride = cuda.gridsize(1)
            j = g // n
            i = g - j * n
            cur = j
            mn = edt(inf)
            mx = edt(-inf)
            s = 0.0
            ss = 0.0
            miss = float32(0.0)
            last = 0
            shv = 0.0
            if cur < f:
                load_edges(e, inner_flat, cur)
                last = nbins[cur] - 1
                shv = shift[cur]
            seen = 0
            while j < f:
                mn, mx, s, ss, miss = visit(x[i, j], j, e, ge, sh_edges, inner_flat, sh_hist, hist, last, shv, mn, mx, s, ss, miss)
                seen += 1
                i += stride
                while i >= n:
                    i -= n
                    j += 1
                if j != cur:
                    if reg:
                        flush_ge(ge, seen - int32(miss), cur, last, sh_hist, hist)
                    seen = 0
                    cuda.atomic.min(sh_min, cur, float64(mn))
                    cuda.atomic.max(sh_max, cur, float64(mx))
                    cuda.atomic.add(sh_sum, cur, s)
                    cuda.atomic.add(sh_sumsq, cur, ss)
                    cuda.atomic.add(sh_miss, cur, int64(miss))
                    mn = edt(inf)
                    mx = edt(-inf)
                    s = 0.0
                    ss = 0.0
                    miss = float32(0.0)
                    cur = j
                    if cur < f:
                        load_edges(e, inner_flat, cur)
                        last = nbins[cur] - 1
                        shv = shift[cur]
        cuda.syncthreads()
        blk = cuda.blockIdx.x
        if shared_hist:
            for t in range(tid, nh, bdim):
                c = sh_hist[t]
                if c != 0:
                    cuda.atomic.add(hist, (t // width, t % width), int64(c))
        for t in range(tid, f, bdim):
            p_min[blk, t] = sh_min[t]
            p_max[blk, t] = sh_max[t]
            p_sum[blk, t] = sh_sum[t]
            p_sumsq[blk, t] = sh_sumsq[t]
            p_miss[blk, t] = sh_miss[t]

    return kernel


def _column_groups(f: int, m: int, itemsize: int) -> tuple[list[tuple[int, int]], bool]:
    """Split columns so each launch's static shared memory fits; (groups, histogram in shared memory)."""
    from kernels._cuda import SHARED_BYTES

    per_col_moments = 5 * 8
    per_col_hist = (m + 1) * 4 + (0 if m <= REGISTER_EDGES else m * itemsize)
    g = SHARED_BYTES // (per_col_moments + per_col_hist)
    shared_hist = g >= 1
    if not shared_hist:
        g = SHARED_BYTES // per_col_moments
    g = max(1, min(f, g, 1024))
    return [(a, min(f, a + g)) for a in range(0, f, g)], shared_hist


def binned_stats_cuda(
    x: Any, edges: Any, shift: Any = None, blocks: int | None = None, threads: int | None = None
) -> BinnedStats:
    """CUDA twin (``@cuda.jit``); CuPy input gives CuPy output, NumPy input NumPy output.

    Layout. The fast layout is row-major (C-contiguous). With ``R`` rows per grid step, thread ``g``
    reads column ``g % features`` of rows ``g // features + k R``: a warp reads 32 consecutive values
    (coalesced), and each thread keeps its one column's interior edges (up to
    :data:`REGISTER_EDGES`), min, max, sums and missing count in registers. The loop is software
    pipelined: the next :data:`UNROLL` loads are issued before the current batch is counted, so they
    are in flight while it is. Column-major (F-contiguous) input runs a grid-stride loop over the flat column-major
    index instead (also coalesced; a thread flushes its registers when it crosses into the next
    column). Other strides are read correctly, without the coalescing.

    With up to :data:`REGISTER_EDGES` interior edges a thread counts, in float32 registers, the
    values at or above each of its column's edges (a compare that yields 1.0 or 0.0 and an add per
    edge, no branch and no atomic per value; exact because no thread counts more than
    :data:`EXACT_COUNT` values of a column) and turns those counts into bins when it leaves the
    column: bin ``k`` holds ``ge[k-1] - ge[k]``. A missing value compares false with every edge and is
    masked out of the moments without a branch. With more
    edges each value's bin is found by binary search and counted with a 32-bit shared-memory
    ``atomic.add``. Either way histograms are per block in shared memory, added to the global int64
    histogram once per block; per-block moments are reduced on the device afterwards. Columns are
    launched in groups small enough for a block's static shared memory. float32 data is compared
    with float32 edges (rounded as in :func:`edges_for`, so the bins equal the float64 ones).
    """
    plan = CudaBinnedStats(x, edges, shift, blocks, threads)
    plan.launch()
    return plan.result()


class CudaBinnedStats:
    """A prepared CUDA twin call: :meth:`launch` runs only the kernels (so they can be timed alone),
    :meth:`result` reduces the per-block partials into :class:`BinnedStats`."""

    def __init__(self, x: Any, edges: Any, shift: Any = None, blocks: int | None = None, threads: int | None = None,
                 blocks_per_sm: int | None = None, unroll: int | None = None) -> None:
        """``blocks_per_sm``: compile with launch bounds that fit that many blocks of ``threads`` on a
        multiprocessor (fewer registers, maybe spills); None: the compiler's choice. ``unroll``: loads
        a thread keeps in flight in the row-major loop (default :data:`UNROLL` for float32, half that
        for float64, whose 8-byte values take two registers each).

        The grid is widened where needed so that no thread counts more than :data:`EXACT_COUNT`
        values of a column (its counters are float32 registers)."""
        from kernels._cuda import DeviceIO, grid_threads

        _check_x(x)
        if unroll is None:
            unroll = UNROLL if x.dtype.itemsize == 4 else UNROLL // 2
        if int(unroll) < 1:
            raise ValueError(f"unroll: expected at least 1, got {unroll}")
        self.n, f = x.shape
        self.f = f
        inner, nbins = prepare_edges(edges, f)
        self.shift = _shift(shift, f)
        m = inner.shape[1]
        inner_x = edges_for(inner, x.dtype)
        io = self.io = DeviceIO(x)
        nblocks, nthreads = grid_threads(blocks, threads)
        d_x = io.to_device(x)
        self.hist = io.full((f, m + 1), 0, np.int64)
        groups, shared_hist = _column_groups(f, m, x.dtype.itemsize)
        col_major = bool(f > 1 and d_x.strides[0] < d_x.strides[1])  # the layout on the device (NumPy input arrives C-ordered)
        # row-major with unit column stride (C order): the kernel reads through a flat view
        flat = bool(not col_major and d_x.flags["C_CONTIGUOUS"] and d_x.size > 0)
        d_flat = d_x.reshape(-1) if flat else io.to_device(np.zeros(1, dtype=x.dtype))
        self.launches: list[tuple[Any, int, int, tuple[Any, ...]]] = []
        self.partials: list[tuple[Any, ...]] = []
        for a, b in groups:
            fg = b - a
            bounds = (nthreads, int(blocks_per_sm)) if blocks_per_sm else None
            kernel = _cuda_kernel(fg, m, str(x.dtype), col_major, shared_hist, flat, bounds, int(unroll))
            if col_major:
                # a thread sees at most ceil(rows / grid size) + 1 values of a column
                rows_per_step, launch_blocks = 0, max(nblocks, -(-self.n // ((EXACT_COUNT - 1) * nthreads)))
            else:
                rows_per_step = max(1, (nblocks * nthreads) // fg, -(-self.n // EXACT_COUNT))
                launch_blocks = -(-(rows_per_step * fg) // nthreads)
            part = (
                io.full((launch_blocks, fg), np.inf, np.float64),
                io.full((launch_blocks, fg), -np.inf, np.float64),
                io.full((launch_blocks, fg), 0.0, np.float64),
                io.full((launch_blocks, fg), 0.0, np.float64),
                io.full((launch_blocks, fg), 0, np.int64),
            )
            edges_flat = inner_x[a:b].reshape(-1) if m else np.full(1, np.inf, dtype=inner_x.dtype)
            args = (
                d_x[:, a:b] if fg != f else d_x,
                d_flat,
                a,
                f,
                io.to_device(edges_flat),
                io.to_device(nbins[a:b]),
                io.to_device(self.shift[a:b]),
                rows_per_step,
                self.hist[a:b] if fg != f else self.hist,
                *part,
            )
            self.launches.append((kernel, launch_blocks, nthreads, args))
            self.partials.append(part)

    def launch(self) -> None:
        """Run the kernels (asynchronously on the default stream). Each launch starts the histograms
        from zero, so :meth:`result` describes ``x`` however often it ran."""
        if self.n == 0:
            return
        if hasattr(self.hist, "fill"):  # CuPy (or NumPy where nothing runs)
            self.hist.fill(0)
        else:  # a Numba device array (NumPy input)
            self.hist.copy_to_device(np.zeros(self.hist.shape, self.hist.dtype))
        for kernel, nb, nt, args in self.launches:
            launch(kernel, nb, nt, *args)

    def result(self) -> BinnedStats:
        io = self.io
        xp = io.xp
        mins, maxs, sums, sumsqs, misses = [], [], [], [], []
        for p_min, p_max, p_sum, p_sumsq, p_miss in self.partials:
            mins.append(io.result(p_min).min(axis=0))
            maxs.append(io.result(p_max).max(axis=0))
            sums.append(io.result(p_sum).sum(axis=0))
            sumsqs.append(io.result(p_sumsq).sum(axis=0))
            misses.append(io.result(p_miss).sum(axis=0))
        cat = xp.concatenate
        return BinnedStats(
            io.result(self.hist), cat(misses).astype(np.int64), cat(mins), cat(maxs), cat(sums), cat(sumsqs),
            xp.asarray(self.shift), self.n,
        )


# ------------------------------------------------------------------------------------- dispatcher
def binned_stats(x: Any, edges: Any, shift: Any = None) -> BinnedStats:
    """Binned statistics of every column of ``x``; the twin is chosen from ``x``'s namespace.

    Parameters
    ----------
    x : (rows, features) array, NumPy or CuPy
        float32 or float64 (other dtypes are converted to float64); NaN marks a missing value.
    edges : (features, max_bins + 1) array
        Per-column bin edges, NaN-padded at the end for columns with fewer bins (see the module doc
        for which bin a value falls in).
    shift : (features,) array, optional
        ``sum`` and ``sumsq`` are of ``x - shift``.

    Returns
    -------
    BinnedStats
        Arrays in ``x``'s namespace.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.5, np.nan], [1.5, 2.0], [9.0, -1.0]])
    >>> st = binned_stats(x, np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]))
    >>> st.counts.tolist(), st.missing.tolist()
    ([[1, 2], [1, 1]], [0, 1])
    """
    from engine.backend import get_namespace

    xp = get_namespace(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if xp is np:
        return binned_stats_cpu(np.asarray(x), edges, shift)
    return binned_stats_cuda(x, edges, shift)
