"""Best split of each tree node from its histograms (L2-regularised gain, constraints, missing values).

For a node with gradient / hessian / count totals ``(G, H, C)`` and a candidate split sending
``(G_L, H_L, C_L)`` left and the rest right, the gain is::

    G_L^2 / (H_L + l2) + G_R^2 / (H_R + l2) - G^2 / (H + l2)

(the decrease of the second-order loss approximation, as in XGBoost and scikit-learn). A candidate is
valid when both children have at least ``min_samples_leaf`` rows and a hessian sum of at least
``min_child_weight``, and its gain exceeds ``min_gain``.

Candidates of feature ``f`` with ``nb`` value bins (missing bin 255 apart):

- missing values go right: left = bins ``0..b`` for ``b`` in ``0 .. nb - 2``, and, when the node has
  missing values, ``b = nb - 1`` (every value left, only the missing rows right);
- when the node has missing values, missing values go left: left = bins ``0..b`` plus the missing
  bin, ``b`` in ``0 .. nb - 2``.

The best candidate per feature is the first with the largest gain in that order; the best feature is
the first (in ``features`` order) with the largest gain. When the node has no missing value on the
chosen feature, missing values (seen only at prediction) go to the child with more rows.

Outputs per node: gain (``-inf`` when no candidate is valid), feature (-1 then), bin ``b``,
missing-left flag, and the left child's totals ``(G_L, H_L, C_L)`` (missing rows included when they go
left).

Twins: :func:`find_splits_reference` (NumPy, vectorised over bins), :func:`find_splits_cpu`
(``@njit(parallel=True)`` over (node, feature) pairs) and :func:`find_splits_cuda` (``@cuda.jit``: a
block per (node, feature) pair scans its 256 bins, then one thread per node picks the feature). The CPU
twin runs :func:`_scan_feature`; the CUDA block builds the same running sums in the same order with two
threads, evaluates the candidates' gains with all of its threads and keeps the first largest
(:func:`block_scan_factory`), so equal histograms give bit-identical splits. :func:`find_splits` picks
the twin from the namespace of ``hist``.
"""
from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np
from numba import njit, prange

from kernels._cuda import launch, upload

__all__ = ["SplitParams", "Splits", "find_splits", "find_splits_cpu", "find_splits_cuda", "find_splits_reference"]


class SplitParams(NamedTuple):
    """Regularisation and constraints of a split."""

    l2: float = 0.0
    min_child_weight: float = 1e-3
    min_samples_leaf: int = 20
    min_gain: float = 0.0


class Splits(NamedTuple):
    """Best split per node (arrays in the namespace of the histograms)."""

    gain: Any  # (K,) float64, -inf where no valid split
    feature: Any  # (K,) int64, -1 where no valid split
    bin: Any  # (K,) int64
    missing_left: Any  # (K,) uint8
    left: Any  # (K, 3) float64: G_L, H_L, C_L


def _scan_feature(hist, s, f, nb, G, H, C, l2, mcw, msl, min_gain):  # pragma: no cover - compiled twice
    """Best candidate of one (node, feature): (gain, bin, missing_left, G_L, H_L, C_L)."""
    mg = hist[s, f, 255, 0]
    mh = hist[s, f, 255, 1]
    mc = hist[s, f, 255, 2]
    has_missing = mc > 0.0
    den = H + l2
    parent = G * G / den if den > 0.0 else 0.0
    best = -math.inf
    best_b = -1
    best_ml = 0
    bgl = 0.0
    bhl = 0.0
    bcl = 0.0
    end = nb - 1
    if has_missing:
        end = nb
    gl = 0.0
    hl = 0.0
    cl = 0.0
    for b in range(end):
        gl += hist[s, f, b, 0]
        hl += hist[s, f, b, 1]
        cl += hist[s, f, b, 2]
        cr = C - cl
        hr = H - hl
        if cl < msl or hl < mcw:
            continue
        if cr < msl or hr < mcw:
            break
        dl = hl + l2
        dr = hr + l2
        if dl <= 0.0 or dr <= 0.0:
            continue
        gr = G - gl
        gain = gl * gl / dl + gr * gr / dr - parent
        if gain > best and gain > min_gain:
            best = gain
            best_b = b
            best_ml = 0
            bgl = gl
            bhl = hl
            bcl = cl
    if has_missing:
        gl = mg
        hl = mh
        cl = mc
        for b in range(nb - 1):
            gl += hist[s, f, b, 0]
            hl += hist[s, f, b, 1]
            cl += hist[s, f, b, 2]
            cr = C - cl
            hr = H - hl
            if cl < msl or hl < mcw:
                continue
            if cr < msl or hr < mcw:
                break
            dl = hl + l2
            dr = hr + l2
            if dl <= 0.0 or dr <= 0.0:
                continue
            gr = G - gl
            gain = gl * gl / dl + gr * gr / dr - parent
            if gain > best and gain > min_gain:
                best = gain
                best_b = b
                best_ml = 1
                bgl = gl
                bhl = hl
                bcl = cl
    elif best_b >= 0:
        if bcl >= C - bcl:
            best_ml = 1
    return best, best_b, best_ml, bgl, bhl, bcl


@functools.cache
def block_scan_factory() -> Any:
    """A CUDA device function that finds the same candidate as :func:`_scan_feature` with a whole block:
    two threads (in different warps) build the two candidate orders' running left sums sequentially
    (the CPU scan's additions, in its order, so the same values), then every thread evaluates the gains
    of its share of the 2 x 256 candidates and the block keeps the first largest. A candidate is valid
    exactly when the sequential scan would reach and accept it: the two threads also note where their
    order's scan stops (the first bin whose left side is large enough and right side is not), and no
    candidate from there on counts. The right side usually only shrinks along a scan, but a histogram
    made by subtraction can hold a slightly negative hessian from rounding, and then a later candidate
    could pass the right-side test again; the sequential scan never reaches it.

    Returns ``scan_into(hist, s, f, nb, G, H, C, l2, mcw, msl, min_gain, sh, pre, red_g, red_i, t_gain,
    t_bin, t_ml, t_left, k, jf)``, called by every thread of a block (it synchronises): it stages
    ``hist[s, f]`` in the shared ``(1, 1, 256, 3)`` float64 ``sh``, scans it with the shared scratch
    ``pre`` ``(2, 256, 3)`` float64 and ``red_g`` / ``red_i`` (block size, a power of two; float64 /
    int64), and stores the candidate (the scan's tuple) at ``[k, jf]`` of the ``t_*`` outputs.
    """
    from kernels._cuda import cuda as _cuda

    global cuda  # module global: the CUDA simulator swaps it for its fake module while the function runs
    cuda = _cuda()
    inf = math.inf

    @cuda.jit(device=True)
    def block_scan(sh, nb, G, H, C, l2, mcw, msl, min_gain, pre, red_g, red_i):  # pragma: no cover - compiled
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        has_missing = sh[0, 0, 255, 2] > 0.0
        n0 = nb if has_missing else nb - 1  # candidates with missing values right
        n1 = nb - 1 if has_missing else 0  # ... and left
        second = 32 if nt > 32 else nt - 1  # the thread of the second order (another warp)
        # pre[p, 255, 0] (never a candidate: at most 255 bins, and 255 is the missing one) holds where
        # order p's sequential scan stops
        if tid == 0:
            gl = 0.0
            hl = 0.0
            cl = 0.0
            stop = n0
            for b in range(n0):
                gl += sh[0, 0, b, 0]
                hl += sh[0, 0, b, 1]
                cl += sh[0, 0, b, 2]
                pre[0, b, 0] = gl
                pre[0, b, 1] = hl
                pre[0, b, 2] = cl
                if stop == n0 and not (cl < msl or hl < mcw) and (C - cl < msl or H - hl < mcw):
                    stop = b
            pre[0, 255, 0] = stop
        if tid == second:
            gl = sh[0, 0, 255, 0]
            hl = sh[0, 0, 255, 1]
            cl = sh[0, 0, 255, 2]
            stop = n1
            for b in range(n1):
                gl += sh[0, 0, b, 0]
                hl += sh[0, 0, b, 1]
                cl += sh[0, 0, b, 2]
                pre[1, b, 0] = gl
                pre[1, b, 1] = hl
                pre[1, b, 2] = cl
                if stop == n1 and not (cl < msl or hl < mcw) and (C - cl < msl or H - hl < mcw):
                    stop = b
            pre[1, 255, 0] = stop
        cuda.syncthreads()
        den = H + l2
        parent = G * G / den if den > 0.0 else 0.0
        best = -inf
        bi = -1
        for c in range(tid, 512, nt):
            p = c // 256
            b = c - p * 256
            if b >= pre[p, 255, 0]:  # past the end of the order, or where its sequential scan stops
                continue
            gl = pre[p, b, 0]
            hl = pre[p, b, 1]
            cl = pre[p, b, 2]
            cr = C - cl
            hr = H - hl
            if cl < msl or hl < mcw:
                continue
            if cr < msl or hr < mcw:
                continue  # not reached: the scan stops at the first such bin
            dl = hl + l2
            dr = hr + l2
            if dl <= 0.0 or dr <= 0.0:
                continue
            gr = G - gl
            gain = gl * gl / dl + gr * gr / dr - parent
            if gain > best and gain > min_gain:
                best = gain
                bi = c
        red_g[tid] = best
        red_i[tid] = bi
        cuda.syncthreads()
        s = nt // 2
        while s > 0:
            if tid < s:
                og = red_g[tid + s]
                oi = red_i[tid + s]
                if oi >= 0 and (red_i[tid] < 0 or og > red_g[tid] or (og == red_g[tid] and oi < red_i[tid])):
                    red_g[tid] = og
                    red_i[tid] = oi
            cuda.syncthreads()
            s //= 2
        bi = red_i[0]
        if bi < 0:
            return -inf, -1, 0, 0.0, 0.0, 0.0
        p = bi // 256
        b = bi - p * 256
        gl = pre[p, b, 0]
        hl = pre[p, b, 1]
        cl = pre[p, b, 2]
        ml = p
        if not has_missing and cl >= C - cl:
            ml = 1
        return red_g[0], b, ml, gl, hl, cl

    @cuda.jit(device=True)
    def scan_into(hist, s, f, nb, G, H, C, l2, mcw, msl, min_gain, sh, pre, red_g, red_i, t_gain, t_bin, t_ml, t_left,
                  k, jf):  # pragma: no cover - compiled
        # stage hist[s, f] (256 x 3) in shared memory, coalesced; scan; thread 0 stores the candidate
        for t in range(cuda.threadIdx.x, 768, cuda.blockDim.x):
            sh[0, 0, t // 3, t % 3] = hist[s, f, t // 3, t % 3]
        cuda.syncthreads()
        gain, b, ml, gl, hl, cl = block_scan(sh, nb, G, H, C, l2, mcw, msl, min_gain, pre, red_g, red_i)
        if cuda.threadIdx.x == 0:
            t_gain[k, jf] = gain
            t_bin[k, jf] = b
            t_ml[k, jf] = ml
            t_left[k, jf, 0] = gl
            t_left[k, jf, 1] = hl
            t_left[k, jf, 2] = cl

    return scan_into


def _empty(k: int, xp: Any = np) -> Splits:
    return Splits(
        xp.full(k, -np.inf), xp.full(k, -1, dtype=np.int64), xp.zeros(k, dtype=np.int64),
        xp.zeros(k, dtype=np.uint8), xp.zeros((k, 3)),
    )


def _host(a: Any, dtype: Any) -> np.ndarray:
    from engine.backend import to_numpy

    return np.ascontiguousarray(to_numpy(a), dtype=dtype)


# ------------------------------------------------------------------------------------- reference
def _reference_feature(hc, nb, G, H, C, p: SplitParams):
    """Vectorised over bins; the same candidates and the same first-best rule as the scan."""
    cands = []  # (gain, order, bin, missing_left, gl, hl, cl)
    m = hc[255]
    has_missing = m[2] > 0
    den = H + p.l2
    parent = G * G / den if den > 0 else 0.0
    cum = np.cumsum(hc[:nb], axis=0)
    for ml, (lo, offset) in enumerate(((cum[: nb - 1 + has_missing], 0.0), (cum[: nb - 1] + m, 1.0))):
        if ml == 1 and not has_missing:
            continue
        gl, hl, cl = lo[:, 0], lo[:, 1], lo[:, 2]
        gr, hr, cr = G - gl, H - hl, C - cl
        ok = (cl >= p.min_samples_leaf) & (hl >= p.min_child_weight) & (cr >= p.min_samples_leaf) & (hr >= p.min_child_weight)
        ok &= (hl + p.l2 > 0) & (hr + p.l2 > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = gl * gl / (hl + p.l2) + gr * gr / (hr + p.l2) - parent
        ok &= gain > p.min_gain
        if ok.any():
            gain = np.where(ok, gain, -np.inf)
            b = int(np.argmax(gain))
            cands.append((gain[b], ml, b, ml, gl[b], hl[b], cl[b]))
    if not cands:
        return -np.inf, -1, 0, 0.0, 0.0, 0.0
    best = max(cands, key=lambda c: (c[0], -c[1]))
    gain, _, b, ml, gl, hl, cl = best
    if not has_missing:
        ml = int(cl >= C - cl)
    return gain, b, ml, gl, hl, cl


def find_splits_reference(hist, slots, sums, features, n_bins, params: SplitParams) -> Splits:
    """NumPy reference (per node and feature, vectorised over bins)."""
    k = len(slots)
    out = _empty(k)
    for i in range(k):
        G, H, C = (float(v) for v in sums[i])
        for f in features:
            gain, b, ml, gl, hl, cl = _reference_feature(hist[slots[i], f], int(n_bins[f]), G, H, C, params)
            if gain > out.gain[i]:
                out.gain[i], out.feature[i], out.bin[i], out.missing_left[i] = gain, f, b, ml
                out.left[i] = (gl, hl, cl)
    return out


# --------------------------------------------------------------------------------------- CPU twin
_scan_cpu = njit(cache=True)(_scan_feature)


@njit(parallel=True, cache=True)
def _splits_cpu(hist, slots, sums, features, n_bins, l2, mcw, msl, min_gain, gain, feat, sbin, ml, left):  # pragma: no cover
    k_nodes = slots.shape[0]
    nf = features.shape[0]
    t_gain = np.empty((k_nodes, nf))
    t_bin = np.empty((k_nodes, nf), np.int64)
    t_ml = np.empty((k_nodes, nf), np.uint8)
    t_left = np.empty((k_nodes, nf, 3))
    for j in prange(k_nodes * nf):
        k = j // nf
        jf = j - k * nf
        f = features[jf]
        r = _scan_cpu(hist, slots[k], f, n_bins[f], sums[k, 0], sums[k, 1], sums[k, 2], l2, mcw, msl, min_gain)
        t_gain[k, jf] = r[0]
        t_bin[k, jf] = r[1]
        t_ml[k, jf] = r[2]
        t_left[k, jf, 0] = r[3]
        t_left[k, jf, 1] = r[4]
        t_left[k, jf, 2] = r[5]
    for k in range(k_nodes):
        best = -np.inf
        bj = -1
        for jf in range(nf):
            if t_gain[k, jf] > best:
                best = t_gain[k, jf]
                bj = jf
        gain[k] = best
        if bj >= 0:
            feat[k] = features[bj]
            sbin[k] = t_bin[k, bj]
            ml[k] = t_ml[k, bj]
            left[k, 0] = t_left[k, bj, 0]
            left[k, 1] = t_left[k, bj, 1]
            left[k, 2] = t_left[k, bj, 2]
        else:
            feat[k] = -1
            sbin[k] = 0
            ml[k] = 0
            left[k, 0] = 0.0
            left[k, 1] = 0.0
            left[k, 2] = 0.0


def find_splits_cpu(hist, slots, sums, features, n_bins, params: SplitParams) -> Splits:
    """CPU twin (``@njit(parallel=True)``): (node, feature) pairs in parallel, then a pick per node."""
    from kernels.gbdt_launch import cpu_threads

    k = len(slots)
    out = _empty(k)
    if k == 0:
        return out
    fe = _host(features, np.int64)
    with cpu_threads(2.0 * k * len(fe) * 256):
        _splits_cpu(
            hist, _host(slots, np.int64), _host(sums, np.float64).reshape(k, 3), fe, _host(n_bins, np.int64),
            float(params.l2), float(params.min_child_weight), float(params.min_samples_leaf), float(params.min_gain), *out,
        )
    return out


# -------------------------------------------------------------------------------------- CUDA twin
#: Threads of a block that scans one (node, feature) histogram (a power of two).
SCAN_THREADS = 128


def scan_threads() -> int:
    """Block size of the split-scan kernels (4 under the simulator, which pays per thread)."""
    from kernels._cuda import simulator

    return 4 if simulator() else SCAN_THREADS


@functools.cache
def _cuda_kernels():
    from numba import float64, int64

    from kernels._cuda import cuda as _cuda
    from kernels.gbdt_hist import CHANNELS, N_BINS

    global cuda  # module global: the CUDA simulator swaps it for its fake module
    cuda = _cuda()
    scan_into = block_scan_factory()
    nt_scan = scan_threads()

    @cuda.jit
    def per_feature(hist, slots, sums, features, n_bins, l2, mcw, msl, min_gain, t_gain, t_bin, t_ml, t_left):  # pragma: no cover
        # a block per (node, feature): its threads copy the 256 x 3 histogram into shared memory
        # (coalesced), then scan it together (:func:`block_scan_factory`: the CPU twin's sums, the same split)
        sh = cuda.shared.array((1, 1, N_BINS, CHANNELS), float64)
        pre = cuda.shared.array((2, N_BINS, CHANNELS), float64)
        red_g = cuda.shared.array(nt_scan, float64)
        red_i = cuda.shared.array(nt_scan, int64)
        nf = features.shape[0]
        j = cuda.blockIdx.x
        k = j // nf
        jf = j - k * nf
        f = features[jf]
        scan_into(hist, slots[k], f, n_bins[f], sums[k, 0], sums[k, 1], sums[k, 2], l2, mcw, msl, min_gain, sh, pre,
                  red_g, red_i, t_gain, t_bin, t_ml, t_left, k, jf)

    @cuda.jit
    def per_node(features, t_gain, t_bin, t_ml, t_left, gain, feat, sbin, ml, left):  # pragma: no cover
        nf = features.shape[0]
        for k in range(cuda.grid(1), gain.shape[0], cuda.gridsize(1)):
            best = -math.inf
            bj = -1
            for jf in range(nf):
                if t_gain[k, jf] > best:
                    best = t_gain[k, jf]
                    bj = jf
            gain[k] = best
            if bj >= 0:
                feat[k] = features[bj]
                sbin[k] = t_bin[k, bj]
                ml[k] = t_ml[k, bj]
                for c in range(3):
                    left[k, c] = t_left[k, bj, c]
            else:
                feat[k] = -1
                sbin[k] = 0
                ml[k] = 0
                for c in range(3):
                    left[k, c] = 0.0

    return per_feature, per_node


def find_splits_cuda(hist, slots, sums, features, n_bins, params: SplitParams, threads: int | None = None) -> Splits:
    """CUDA twin (``@cuda.jit``): a block per (node, feature) stages its histogram in shared memory and
    scans it with :func:`block_scan_factory` (the CPU twin's running sums, in its order, so the same
    split); a thread per node picks."""
    from engine.backend import get_namespace
    from kernels._cuda import simulator
    from kernels.gbdt_launch import launch_blocks

    xp = get_namespace(hist)
    k = len(slots)
    nf = len(features)
    if k == 0 or nf == 0:
        return _empty(k, xp)
    threads = threads or (32 if simulator() else 128)
    per_feature, per_node = _cuda_kernels()
    d_feat, d_slots, d_sums, d_nbins = upload(
        xp, _host(features, np.int64), _host(slots, np.int64), _host(sums, np.float64).reshape(k, 3), _host(n_bins, np.int64)
    )
    # per_node writes every output: no fill needed
    out = Splits(xp.empty(k), xp.empty(k, dtype=np.int64), xp.empty(k, dtype=np.int64), xp.empty(k, dtype=np.uint8), xp.empty((k, 3)))
    t_gain = xp.empty((k, nf))
    t_bin = xp.empty((k, nf), dtype=np.int64)
    t_ml = xp.empty((k, nf), dtype=np.uint8)
    t_left = xp.empty((k, nf, 3))
    launch(
        per_feature, k * nf, scan_threads(),
        hist, d_slots, d_sums, d_feat, d_nbins, float(params.l2), float(params.min_child_weight),
        float(params.min_samples_leaf), float(params.min_gain), t_gain, t_bin, t_ml, t_left,
    )
    blocks = launch_blocks(k, threads)
    launch(per_node, blocks, threads, d_feat, t_gain, t_bin, t_ml, t_left, *out)
    return out


# ------------------------------------------------------------------------------------- dispatcher
def find_splits(hist: Any, slots: Any, sums: Any, features: Any, n_bins: Any, params: SplitParams) -> Splits:
    """Best split of each node ``k`` from ``hist[slots[k]]`` and its totals ``sums[k] = (G, H, C)``.

    ``features`` are the candidate features (sorted); ``n_bins[f]`` is feature ``f``'s number of value
    bins. The twin follows the namespace of ``hist``.

    Examples
    --------
    >>> from kernels.gbdt_hist import new_pool
    >>> hist = new_pool(1, 1)
    >>> hist[0, 0, 0] = (-4.0, 2.0, 2.0); hist[0, 0, 1] = (4.0, 2.0, 2.0)
    >>> s = find_splits(hist, [0], [[0.0, 4.0, 4.0]], [0], [2], SplitParams(min_samples_leaf=1))
    >>> float(s.gain[0]), int(s.feature[0]), int(s.bin[0])
    (16.0, 0, 0)
    """
    from engine.backend import get_namespace

    if get_namespace(hist) is np:
        return find_splits_cpu(hist, slots, sums, features, n_bins, params)
    return find_splits_cuda(hist, slots, sums, features, n_bins, params)


def gpu_check(nodes: int = 64, features: int = 20) -> dict:
    """For ``bench/gpu_check.py``: the CUDA twin against the CPU twin on random node histograms."""
    import cupy

    from kernels.gbdt_hist import new_pool
    from kernels.gbdt_launch import cpu_timed, gpu_timed

    rng = np.random.default_rng(1)
    hist = new_pool(nodes, features)
    hist[..., 2] = rng.integers(0, 50, size=hist.shape[:-1])
    hist[..., 1] = hist[..., 2] * rng.uniform(0.05, 0.25, size=hist.shape[:-1])
    hist[..., 0] = rng.normal(size=hist.shape[:-1]) * hist[..., 2] * 0.3
    slots = np.arange(nodes)
    sums = hist[:, 0].sum(axis=1)
    feats = np.arange(features)
    n_bins = np.full(features, 255)
    params = SplitParams(l2=1.0, min_samples_leaf=20)
    t_cpu, cpu = cpu_timed(lambda: find_splits_cpu(hist, slots, sums, feats, n_bins, params))
    d = cupy.asarray(hist)
    t_gpu, gpu = gpu_timed(lambda: find_splits_cuda(d, slots, sums, feats, n_bins, params))
    ok = all(np.array_equal(cupy.asnumpy(g), c) for g, c in zip(gpu, cpu))
    return {"ok": ok, "detail": f"{nodes} nodes x {features} features: identical {ok}; gpu {t_gpu*1e3:.2f} ms, "
                                f"cpu {t_cpu*1e3:.2f} ms", "gpu_s": t_gpu, "cpu_s": t_cpu}
