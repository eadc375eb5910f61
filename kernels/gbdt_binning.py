"""Feature quantisation for gradient-boosted trees: per-feature bin edges and the uint8 bin matrix.

Bin rule
--------
Feature ``j`` has ``k_j <= max_bins - 1`` strictly increasing float32 edges ``e_0 < ... < e_{k_j-1}``
and ``k_j + 1`` value bins. A value ``v`` falls in bin ``#{i : e_i < v}`` (``searchsorted(e, v,
side="left")``), so ``bin(v) <= b`` exactly when ``v <= e_b``: a split "bin <= b" is the float test
``v <= e_b`` that a tree (and ONNX ``BRANCH_LEQ``) evaluates on raw values. ``-inf`` falls in bin 0,
``+inf`` in the last value bin. NaN falls in :data:`MISSING_BIN` (255), which is reserved for missing
values: value bins are ``0 .. max_bins - 1 <= 254``.

Edges live in a ``(features, 254)`` float32 matrix padded with ``+inf`` beyond ``k_j``; ``+inf``
padding is never ``< v``, so the padded row gives the same bin as the unpadded one.

Edges
-----
:func:`bin_edges` takes the edges from (a subsample of) the training data, like scikit-learn's
HistGradientBoosting: a feature with at most ``max_bins`` distinct finite values gets one edge between
each pair of neighbours; otherwise the edges are the ``max_bins - 1`` inner quantiles (midpoint
method). Each edge is rounded *down* to float32, which keeps it at or above the lower of the two
float32 values it separates and below the upper one.

Twins
-----
:func:`apply_bins_reference` (NumPy ``searchsorted`` per column), :func:`apply_bins_cpu`
(``@njit(parallel=True)``, row chunks in parallel) and :func:`apply_bins_cuda` (``@cuda.jit``, one
thread per value, grid-stride) compute the same ``(rows, features)`` uint8 matrix (row-major: the
histogram kernels read all features of a row together). Both twins run a fixed 8-step branch-free
binary search over the edges padded to 256 columns. :func:`apply_bins` picks the twin from the
array's namespace.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba import njit, prange

from kernels._cuda import launch

__all__ = [
    "EDGE_SLOTS",
    "MAX_BINS",
    "MISSING_BIN",
    "apply_bins",
    "apply_bins_cpu",
    "apply_bins_cuda",
    "apply_bins_reference",
    "bin_edges",
]

#: Bin index of a missing (NaN) value.
MISSING_BIN = 255
#: Largest number of value bins per feature.
MAX_BINS = 255
#: Width of the padded edge matrix (at most ``MAX_BINS - 1`` edges per feature).
EDGE_SLOTS = MAX_BINS - 1


def _float32_down(v: np.ndarray) -> np.ndarray:
    """Largest float32 not above each float64 value."""
    f = v.astype(np.float32)
    over = f.astype(np.float64) > v
    f[over] = np.nextafter(f[over], np.float32(-np.inf))
    return f


def _percentile_midpoint(ordered: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.percentile(ordered, q, method="midpoint")`` (float64) of values already sorted ascending,
    computed as NumPy does (same indices, same interpolation), without its partition."""
    n = ordered.size
    vi = (n - 1) * (q / 100)
    prev = np.floor(vi).astype(np.intp)
    a = ordered[prev].astype(np.float64)
    b = ordered[np.minimum(prev + 1, n - 1)].astype(np.float64)
    gamma = np.where(vi - prev == 0, 0.0, 0.5)
    diff = b - a
    out = a + diff * gamma
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5)
    return out


def _feature_edges(col: np.ndarray, max_bins: int) -> np.ndarray:
    """Edges of one column sorted ascending (NaN last, as ``np.sort`` and ``cupy.sort`` leave it)."""
    inf = col.dtype.type(np.inf)  # of the column's dtype: a float64 key would convert the whole column
    lo, hi = np.searchsorted(col, -inf, side="right"), np.searchsorted(col, inf, side="left")
    col = col[lo:hi]  # the finite values, still sorted
    if col.size == 0:
        return np.empty(0, np.float32)
    new = col[1:] != col[:-1]
    if 1 + np.count_nonzero(new) <= max_bins:
        distinct = col[np.concatenate([[True], new])].astype(np.float64)
        mids = (distinct[:-1] + distinct[1:]) * 0.5
    else:
        mids = _percentile_midpoint(col, np.linspace(0.0, 100.0, max_bins + 1)[1:-1])
    return np.unique(_float32_down(mids))


def bin_edges(x: Any, max_bins: int = MAX_BINS, subsample: int | None = 200_000, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature bin edges of ``x`` (taken on the host from at most ``subsample`` rows).

    Parameters
    ----------
    x : (rows, features) array, NumPy or CuPy
        Training data; NaN and infinite values do not shape the edges.
    max_bins : int
        Value bins per feature, 2 to 255 (one more bin, 255, holds missing values).
    subsample : int or None
        Rows the quantiles are taken from (drawn without replacement with ``seed``); None uses all.
    seed : int or None
        Seed of the row subsample.

    Returns
    -------
    edges : (features, 254) float32
        Each feature's edges, padded with ``+inf``.
    n_bins : (features,) int32
        Value bins per feature (edges + 1).

    Examples
    --------
    >>> e, nb = bin_edges(np.array([[1.0], [2.0], [3.0]]), max_bins=4)
    >>> e[0, :nb[0] - 1].tolist(), nb.tolist()
    ([1.5, 2.5], [3])
    """
    from engine.backend import get_namespace, to_numpy

    if not 2 <= int(max_bins) <= MAX_BINS:
        raise ValueError(f"max_bins: expected an integer in [2, {MAX_BINS}], got {max_bins}")
    if x.ndim != 2:
        raise ValueError(f"x: expected a 2-D (rows, features) matrix, got {x.ndim} dimension(s)")
    n, f = x.shape
    if subsample is not None and n > subsample:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(n, int(subsample), replace=False))
        sample = x[get_namespace(x).asarray(idx)]
    else:
        sample = x
    # each column sorted once, on the sample's device: quantiles and distinct values are then cheap
    xp = get_namespace(sample)
    ordered = np.asarray(to_numpy(xp.sort(xp.ascontiguousarray(xp.asarray(sample, dtype=np.float32).T), axis=1)))
    edges = np.full((f, EDGE_SLOTS), np.inf, np.float32)
    n_bins = np.ones(f, np.int32)
    for j in range(f):
        e = _feature_edges(ordered[j], int(max_bins))
        edges[j, : e.size] = e
        n_bins[j] = e.size + 1
    return edges, n_bins


def _check(x: Any, edges: Any, n_bins: Any) -> None:
    if x.ndim != 2:
        raise ValueError(f"x: expected a 2-D (rows, features) matrix, got {x.ndim} dimension(s)")
    if edges.shape != (x.shape[1], EDGE_SLOTS):
        raise ValueError(f"edges: expected shape ({x.shape[1]}, {EDGE_SLOTS}), got {tuple(edges.shape)}")
    if n_bins.shape != (x.shape[1],):
        raise ValueError(f"n_bins: expected shape ({x.shape[1]},), got {tuple(n_bins.shape)}")


# ------------------------------------------------------------------------------------- reference
def apply_bins_reference(x: np.ndarray, edges: np.ndarray, n_bins: np.ndarray) -> np.ndarray:
    """NumPy reference: ``searchsorted(edges, v, side="left")`` per column; NaN -> 255."""
    x = np.asarray(x, dtype=np.float32)
    _check(x, edges, n_bins)
    out = np.empty(x.shape, np.uint8)
    for j in range(x.shape[1]):
        e = edges[j, : n_bins[j] - 1]
        b = np.searchsorted(e, x[:, j], side="left")
        b[np.isnan(x[:, j])] = MISSING_BIN
        out[:, j] = b
    return out


# --------------------------------------------------------------------------------------- CPU twin
def _padded(edges: Any) -> np.ndarray:
    """Edges padded with ``+inf`` to 256 columns: the fixed 8-step search reads up to column 254."""
    from engine.backend import to_numpy

    e = np.full((edges.shape[0], 256), np.inf, np.float32)
    e[:, :EDGE_SLOTS] = np.asarray(to_numpy(edges), dtype=np.float32)
    return e


@njit(parallel=True, cache=True)
def _apply_bins_cpu(x, edges, out):  # pragma: no cover - compiled
    n, f = x.shape
    chunk = 4096
    n_chunks = (n + chunk - 1) // chunk
    for c in prange(n_chunks):
        r0 = c * chunk
        r1 = min(n, r0 + chunk)
        for i in range(r0, r1):
            for j in range(f):
                v = np.float32(x[i, j])
                # branch-free binary search over the 256 padded edges: number of edges below v
                base = 0
                half = 128
                while half > 0:
                    base += half * (edges[j, base + half - 1] < v)
                    half >>= 1
                out[i, j] = 255 if v != v else base


def apply_bins_cpu(x: np.ndarray, edges: np.ndarray, n_bins: np.ndarray) -> np.ndarray:
    """CPU twin (``@njit(parallel=True)``): chunks of rows in parallel, a branch-free binary search
    per value (fixed 8 steps over the edges padded to 256 with ``+inf``)."""
    _check(x, edges, n_bins)
    out = np.empty(x.shape, np.uint8)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    from kernels.gbdt_launch import cpu_threads

    with cpu_threads(15.0 * x.size):
        _apply_bins_cpu(x, _padded(edges), out)
    return out


# -------------------------------------------------------------------------------------- CUDA twin
@functools.cache
def _cuda_kernel():
    from numba import float32

    from kernels._cuda import cuda as _cuda

    global cuda  # module global: the CUDA simulator swaps it for its fake module
    cuda = _cuda()

    @cuda.jit
    def kernel(x, edges, out):  # pragma: no cover - compiled
        n = x.shape[0]
        f = x.shape[1]
        total = n * f
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for t in range(start, total, stride):
            i = t // f
            j = t - i * f
            v = float32(x[i, j])
            base = 0
            half = 128
            while half > 0:
                if edges[j, base + half - 1] < v:
                    base += half
                half >>= 1
            out[i, j] = 255 if v != v else base

    return kernel


def apply_bins_cuda(x: Any, edges: Any, n_bins: Any, blocks: int | None = None, threads: int | None = None) -> Any:
    """CUDA twin (``@cuda.jit``): one thread per value over a grid-stride loop of the row-major index
    (consecutive threads read and write consecutive addresses); edges are read through the cache.
    Output is in ``x``'s namespace (NumPy input runs through Numba's host transfers)."""
    from engine.backend import get_namespace
    from kernels._cuda import grid_threads

    _check(x, edges, n_bins)
    xp = get_namespace(x)
    out = xp.empty(x.shape, dtype=np.uint8)
    nb, nt = grid_threads(blocks, threads)
    if x.size:
        launch(_cuda_kernel(), nb, nt, x, xp.asarray(_padded(edges)), out)
    return out


# ------------------------------------------------------------------------------------- dispatcher
def apply_bins(x: Any, edges: Any, n_bins: Any) -> Any:
    """The ``(rows, features)`` uint8 bin matrix of ``x``; the twin is chosen from ``x``'s namespace.

    Examples
    --------
    >>> e, nb = bin_edges(np.array([[1.0], [2.0], [3.0]]), max_bins=4)
    >>> apply_bins(np.array([[0.0], [1.5], [2.0], [np.nan], [9.0]]), e, nb).ravel().tolist()
    [0, 0, 1, 255, 2]
    """
    from engine.backend import get_namespace

    if get_namespace(x) is np:
        return apply_bins_cpu(np.asarray(x), np.asarray(edges), np.asarray(n_bins))
    return apply_bins_cuda(x, edges, n_bins)


def gpu_check(rows: int = 2_000_000, features: int = 20) -> dict:
    """For ``bench/gpu_check.py``: the CUDA twin against the CPU twin and the reference (CuPy data)."""
    import cupy

    from kernels.gbdt_launch import cpu_timed, gpu_timed

    rng = np.random.default_rng(2)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    x[rng.random(x.shape) < 0.02] = np.nan
    edges, n_bins = bin_edges(x)
    t_cpu, cpu = cpu_timed(lambda: apply_bins_cpu(x, edges, n_bins))
    d = cupy.asarray(x)
    t_gpu, dev = gpu_timed(lambda: apply_bins_cuda(d, edges, n_bins))
    ok = bool(np.array_equal(cupy.asnumpy(dev), cpu) and np.array_equal(cpu[:10_000], apply_bins_reference(x[:10_000], edges, n_bins)))
    return {"ok": ok, "detail": f"{rows:,} x {features}: equal to cpu and reference {ok}; gpu {t_gpu*1e3:.2f} ms "
                                f"({x.nbytes/t_gpu/1e9:.0f} GB/s read), cpu {t_cpu*1e3:.0f} ms", "gpu_s": t_gpu, "cpu_s": t_cpu}
