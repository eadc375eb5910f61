"""Tree ensemble evaluation: raw scores from float features or from bins, and leaf updates.

Tree layout (flat arrays over all nodes of all trees; ``offsets[t]`` is tree ``t``'s root and child
indices are local to their tree):

- ``feature`` int32: split feature, -1 for a leaf;
- ``threshold`` float32: go left when ``x <= threshold`` (``+inf`` sends every value left);
- ``split_bin`` int32: the same test on bins, ``bin <= split_bin``;
- ``missing_left`` uint8: where NaN (bin 255) goes;
- ``left``, ``right`` int32: children (local indices);
- ``value`` float64: the leaf's contribution to the raw score (learning rate included).

Features are compared as float32, so a float64 input behaves like its float32 rounding (the bin
matrix is built the same way, see :mod:`kernels.gbdt_binning`).

Twins: ``*_reference`` (NumPy, vectorised over rows), ``*_cpu`` (``@njit(parallel=True)``: blocks of
64 rows in parallel; a block walks each tree level by level, all its rows together, through a packed
breadth-first copy of the trees in which leaves point to themselves, so the steps carry no branches
and independent rows overlap) and ``*_cuda``
(``@cuda.jit``, one thread per row). Dispatchers pick the twin from the namespace of the data.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
from numba import njit, prange

from kernels._cuda import launch, upload

__all__ = [
    "Forest",
    "add_leaf_values",
    "add_leaf_values_cpu",
    "add_leaf_values_cuda",
    "add_leaf_values_reference",
    "predict_binned",
    "predict_binned_cpu",
    "predict_binned_cuda",
    "predict_binned_reference",
    "predict_raw",
    "predict_raw_cpu",
    "predict_raw_cuda",
    "predict_raw_reference",
]


class Forest(NamedTuple):
    """Flat node arrays of a tree ensemble (see the module doc)."""

    offsets: Any  # (trees,) int64
    feature: Any  # int32
    threshold: Any  # float32
    split_bin: Any  # int32
    missing_left: Any  # uint8
    left: Any  # int32
    right: Any  # int32
    value: Any  # float64

    def to(self, xp: Any) -> "Forest":
        """The same arrays in namespace ``xp``."""
        return Forest(*(xp.asarray(a) for a in self))


def _host(a: Any, dtype: Any) -> np.ndarray:
    from engine.backend import to_numpy

    return np.ascontiguousarray(to_numpy(a), dtype=dtype)


# ------------------------------------------------------------------------------------- reference
def predict_raw_reference(x, forest: Forest, out) -> np.ndarray:
    """NumPy reference: every row walks every tree, one level per vectorised step."""
    x = np.asarray(x, np.float32)
    rows = np.arange(x.shape[0])
    for off in forest.offsets:
        node = np.full(x.shape[0], int(off), np.int64)
        while True:
            f = forest.feature[node]
            inner = f >= 0
            if not inner.any():
                break
            v = x[rows[inner], f[inner]]
            go_left = np.where(np.isnan(v), forest.missing_left[node[inner]] != 0, v <= forest.threshold[node[inner]])
            child = np.where(go_left, forest.left[node[inner]], forest.right[node[inner]])
            node[inner] = off + child
        out += forest.value[node]
    return out


def predict_binned_reference(bins, forest: Forest, out) -> np.ndarray:
    """NumPy reference on the bin matrix."""
    rows = np.arange(bins.shape[0])
    for off in forest.offsets:
        node = np.full(bins.shape[0], int(off), np.int64)
        while True:
            f = forest.feature[node]
            inner = f >= 0
            if not inner.any():
                break
            b = bins[rows[inner], f[inner]].astype(np.int64)
            go_left = np.where(b == 255, forest.missing_left[node[inner]] != 0, b <= forest.split_bin[node[inner]])
            node[inner] = off + np.where(go_left, forest.left[node[inner]], forest.right[node[inner]])
        out += forest.value[node]
    return out


def add_leaf_values_reference(raw, rows, starts, counts, values) -> np.ndarray:
    """NumPy reference: ``raw[rows[starts[k] : starts[k] + counts[k]]] += values[k]``."""
    for s, c, v in zip(starts, counts, values):
        raw[rows[int(s) : int(s) + int(c)]] += v
    return raw


# --------------------------------------------------------------------------------------- CPU twin
@njit(cache=True)
def _walkable(offsets, feature, cmp, leaf_cmp, missing_left, left, right, value):  # pragma: no cover - compiled
    """Per-tree depth and a packed copy of the forest for the CPU walk.

    Nodes are renumbered breadth-first, so that every node's children are adjacent (right = left + 1).
    ``rec[j] = (feature, left child, missing-left flag, comparison value)`` (uint32; the comparison
    value is the threshold's float32 bits or the split bin). A leaf reads feature 0, compares against
    ``leaf_cmp`` (``+inf`` / bin 255, always true), sends NaN left and has itself as left child: a row
    that reached it stays, so every row can take exactly ``depth`` steps without testing for leaves.
    """
    n = feature.shape[0]
    n_trees = offsets.shape[0]
    rec = np.zeros((n, 4), np.uint32)
    val = np.zeros(n, np.float64)
    depth = np.zeros(n_trees, np.int64)
    queue = np.empty(n, np.int64)
    node_depth = np.zeros(n, np.int64)
    for t in range(n_trees):
        off = offsets[t]
        queue[0] = 0
        node_depth[off] = 0
        head = 0
        tail = 1
        while head < tail:
            old = queue[head]
            new = head
            head += 1
            j = off + old
            d = node_depth[off + new]
            if d > depth[t]:
                depth[t] = d
            val[off + new] = value[j]
            if feature[j] >= 0:
                rec[off + new, 0] = feature[j]
                rec[off + new, 1] = tail
                rec[off + new, 2] = missing_left[j]
                rec[off + new, 3] = cmp[j]
                queue[tail] = left[j]
                queue[tail + 1] = right[j]
                node_depth[off + tail] = d + 1
                node_depth[off + tail + 1] = d + 1
                tail += 2
            else:
                rec[off + new, 0] = 0
                rec[off + new, 1] = new
                rec[off + new, 2] = 1
                rec[off + new, 3] = leaf_cmp
    return depth, rec, val


@njit(parallel=True, cache=True)
def _predict_raw_cpu(x, offsets, depth, rec, recf, value, out):  # pragma: no cover - compiled
    # Rows of a block advance through a tree together, one level per step: independent rows overlap
    # in the core, and the child is computed (left + 1 - went_left), not branched to. Unsigned
    # indices spare the negative-index checks.
    n = x.shape[0]
    block = 64
    n_blocks = (n + block - 1) // block
    xf = x.reshape(-1)
    width = np.uint64(x.shape[1])
    one = np.uint64(1)
    for blk in prange(n_blocks):
        r0 = blk * block
        m = min(n, r0 + block) - r0
        node = np.empty(block, np.uint64)
        for t in range(offsets.shape[0]):
            off = np.uint64(offsets[t])
            for i in range(m):
                node[i] = off
            for _ in range(depth[t]):
                for i in range(m):
                    j = node[i]
                    v = np.float32(xf[np.uint64(r0 + i) * width + np.uint64(rec[j, 0])])
                    go = np.uint64((v <= recf[j, 3]) | ((v != v) & (rec[j, 2] != 0)))
                    node[i] = off + np.uint64(rec[j, 1]) + one - go
            for i in range(m):
                out[r0 + i] += value[node[i]]


@njit(parallel=True, cache=True)
def _predict_binned_cpu(bins, offsets, depth, rec, value, out):  # pragma: no cover - compiled
    n = bins.shape[0]
    block = 64
    n_blocks = (n + block - 1) // block
    bf = bins.reshape(-1)
    width = np.uint64(bins.shape[1])
    one = np.uint64(1)
    for blk in prange(n_blocks):
        r0 = blk * block
        m = min(n, r0 + block) - r0
        node = np.empty(block, np.uint64)
        for t in range(offsets.shape[0]):
            off = np.uint64(offsets[t])
            for i in range(m):
                node[i] = off
            for _ in range(depth[t]):
                for i in range(m):
                    j = node[i]
                    b = np.uint32(bf[np.uint64(r0 + i) * width + np.uint64(rec[j, 0])])
                    go = np.uint64((b <= rec[j, 3]) | ((b == np.uint32(255)) & (rec[j, 2] != 0)))
                    node[i] = off + np.uint64(rec[j, 1]) + one - go
            for i in range(m):
                out[r0 + i] += value[node[i]]


@njit(parallel=True, cache=True)
def _add_leaf_values_cpu(raw, rows, starts, counts, values):  # pragma: no cover
    for k in prange(starts.shape[0]):
        v = values[k]
        for i in range(starts[k], starts[k] + counts[k]):
            raw[rows[i]] += v


_FOREST_DTYPES = (np.int64, np.int32, np.float32, np.int32, np.uint8, np.int32, np.int32, np.float64)


def _forest_host(forest: Forest) -> Forest:
    return Forest(*(_host(a, d) for a, d in zip(forest, _FOREST_DTYPES)))


def predict_raw_cpu(x, forest: Forest, out) -> np.ndarray:
    """CPU twin: blocks of 64 rows in parallel; ``out`` (float64) is added to."""
    from kernels.gbdt_launch import cpu_threads

    f = _forest_host(forest)
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    depth, rec, val = _walkable(
        f.offsets, f.feature, f.threshold.view(np.uint32), np.float32(np.inf).view(np.uint32), f.missing_left, f.left, f.right, f.value
    )
    with cpu_threads(2.0 * x.shape[0] * depth.sum()):
        _predict_raw_cpu(x, f.offsets, depth, rec, rec.view(np.float32), val, out)
    return out


def predict_binned_cpu(bins, forest: Forest, out) -> np.ndarray:
    """CPU twin of :func:`predict_binned`."""
    from kernels.gbdt_launch import cpu_threads

    f = _forest_host(forest)
    if not bins.flags.c_contiguous:
        bins = np.ascontiguousarray(bins)
    depth, rec, val = _walkable(
        f.offsets, f.feature, f.split_bin.view(np.uint32), np.uint32(255), f.missing_left, f.left, f.right, f.value
    )
    with cpu_threads(2.0 * bins.shape[0] * depth.sum()):
        _predict_binned_cpu(bins, f.offsets, depth, rec, val, out)
    return out


def add_leaf_values_cpu(raw, rows, starts, counts, values) -> np.ndarray:
    """CPU twin: leaves in parallel (each row belongs to one leaf)."""
    from kernels.gbdt_launch import cpu_threads

    ct = _host(counts, np.int64)
    with cpu_threads(4.0 * ct.sum()):
        _add_leaf_values_cpu(raw, rows, _host(starts, np.int64), ct, _host(values, np.float64))
    return raw


# -------------------------------------------------------------------------------------- CUDA twin
@functools.cache
def _cuda_kernels():
    from numba import float32

    from kernels._cuda import cuda as _cuda

    global cuda  # module global: the CUDA simulator swaps it for its fake module
    cuda = _cuda()

    @cuda.jit
    def raw_kernel(x, offsets, feature, threshold, missing_left, left, right, value, out):  # pragma: no cover
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            acc = 0.0
            for t in range(offsets.shape[0]):
                off = offsets[t]
                j = off
                while feature[j] >= 0:
                    v = float32(x[i, feature[j]])
                    if v != v:
                        go = missing_left[j] != 0
                    else:
                        go = v <= threshold[j]
                    j = off + (left[j] if go else right[j])
                acc += value[j]
            out[i] += acc

    @cuda.jit
    def binned_kernel(bins, offsets, feature, split_bin, missing_left, left, right, value, out):  # pragma: no cover
        for i in range(cuda.grid(1), bins.shape[0], cuda.gridsize(1)):
            acc = 0.0
            for t in range(offsets.shape[0]):
                off = offsets[t]
                j = off
                while feature[j] >= 0:
                    b = bins[i, feature[j]]
                    if b == 255:
                        go = missing_left[j] != 0
                    else:
                        go = b <= split_bin[j]
                    j = off + (left[j] if go else right[j])
                acc += value[j]
            out[i] += acc

    @cuda.jit
    def leaf_kernel(raw, rows, blk_node, blk_start, blk_end, values):  # pragma: no cover
        b = cuda.blockIdx.x
        v = values[blk_node[b]]
        for i in range(blk_start[b] + cuda.threadIdx.x, blk_end[b], cuda.blockDim.x):
            raw[rows[i]] += v

    return raw_kernel, binned_kernel, leaf_kernel


def _forest_device(forest: Forest, xp: Any) -> Forest:
    """The forest in ``xp`` with the kernels' dtypes: as it is when it is there already, else one upload."""
    if all(not isinstance(a, np.ndarray) and a.dtype == d for a, d in zip(forest, _FOREST_DTYPES)):
        return forest
    return Forest(*upload(xp, *_forest_host(forest)))


def predict_raw_cuda(x, forest: Forest, out, blocks: int | None = None, threads: int | None = None) -> Any:
    """CUDA twin: one thread per row walks every tree (grid-stride over rows)."""
    from engine.backend import get_namespace
    from kernels._cuda import grid_threads

    xp = get_namespace(out)
    f = _forest_device(forest, xp)
    nb, nt = grid_threads(blocks, threads)
    if x.shape[0]:
        launch(_cuda_kernels()[0], nb, nt, x, f.offsets, f.feature, f.threshold, f.missing_left, f.left, f.right, f.value, out)
    return out


def predict_binned_cuda(bins, forest: Forest, out, blocks: int | None = None, threads: int | None = None) -> Any:
    """CUDA twin of :func:`predict_binned`."""
    from engine.backend import get_namespace
    from kernels._cuda import grid_threads

    xp = get_namespace(out)
    f = _forest_device(forest, xp)
    nb, nt = grid_threads(blocks, threads)
    if bins.shape[0]:
        launch(_cuda_kernels()[1], nb, nt, bins, f.offsets, f.feature, f.split_bin, f.missing_left, f.left, f.right, f.value, out)
    return out


def add_leaf_values_cuda(raw, rows, starts, counts, values, threads: int | None = None) -> Any:
    """CUDA twin: a block per run of ``threads x 16`` positions of one leaf."""
    from engine.backend import get_namespace
    from kernels._cuda import simulator
    from kernels.gbdt_launch import block_table

    xp = get_namespace(raw)
    threads = threads or (32 if simulator() else 256)
    node, lo, hi = block_table(_host(starts, np.int64), _host(counts, np.int64), threads * (2 if simulator() else 16))
    if node.size:
        launch(
            _cuda_kernels()[2], node.size, threads,
            raw, rows, *upload(xp, node, lo, hi, _host(values, np.float64)),
        )
    return raw


# ------------------------------------------------------------------------------------ dispatchers
def predict_raw(x: Any, forest: Forest, out: Any) -> Any:
    """Add every tree's leaf value for each row of ``x`` (float features) to ``out`` (float64).

    Examples
    --------
    >>> stump = Forest(np.array([0]), np.array([0, -1, -1], np.int32), np.array([0.5, 0, 0], np.float32),
    ...                np.array([0, 0, 0], np.int32), np.array([1, 0, 0], np.uint8),
    ...                np.array([1, 0, 0], np.int32), np.array([2, 0, 0], np.int32), np.array([0.0, -1.0, 1.0]))
    >>> predict_raw(np.array([[0.0], [1.0], [np.nan]]), stump, np.zeros(3)).tolist()
    [-1.0, 1.0, -1.0]
    """
    from engine.backend import get_namespace

    if get_namespace(x) is np:
        return predict_raw_cpu(x, forest, out)
    return predict_raw_cuda(x, forest, out)


def predict_binned(bins: Any, forest: Forest, out: Any) -> Any:
    """Like :func:`predict_raw` on the bin matrix (the ``split_bin`` tests)."""
    from engine.backend import get_namespace

    if get_namespace(bins) is np:
        return predict_binned_cpu(bins, forest, out)
    return predict_binned_cuda(bins, forest, out)


def add_leaf_values(raw: Any, rows: Any, starts: Any, counts: Any, values: Any) -> Any:
    """``raw[rows[starts[k] : starts[k] + counts[k]]] += values[k]`` for every leaf ``k``."""
    from engine.backend import get_namespace

    if get_namespace(raw) is np:
        return add_leaf_values_cpu(raw, rows, starts, counts, values)
    return add_leaf_values_cuda(raw, rows, starts, counts, values)


def gpu_check(rows: int = 1_000_000, features: int = 20, trees: int = 100, depth: int = 6) -> dict:
    """For ``bench/gpu_check.py``: the CUDA twin of :func:`predict_raw` against the CPU twin on random
    complete trees (CuPy data), with rows/s."""
    import cupy

    from kernels.gbdt_launch import cpu_timed, gpu_timed

    rng = np.random.default_rng(3)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    x[rng.random(x.shape) < 0.02] = np.nan
    size = 2 ** (depth + 1) - 1
    inner = np.arange(size) < 2**depth - 1
    local = np.arange(size)
    forest = Forest(
        np.arange(trees, dtype=np.int64) * size,
        np.where(np.tile(inner, trees), rng.integers(0, features, size * trees), -1).astype(np.int32),
        rng.normal(size=size * trees).astype(np.float32), np.zeros(size * trees, np.int32),
        rng.integers(0, 2, size * trees).astype(np.uint8), np.tile(np.where(inner, 2 * local + 1, 0), trees).astype(np.int32),
        np.tile(np.where(inner, 2 * local + 2, 0), trees).astype(np.int32), rng.normal(size=size * trees),
    )
    t_cpu, cpu = cpu_timed(lambda: predict_raw_cpu(x, forest, np.zeros(rows)))
    dx = cupy.asarray(x)
    t_gpu, gpu = gpu_timed(lambda: predict_raw_cuda(dx, forest, cupy.zeros(rows)))
    diff = float(np.abs(cupy.asnumpy(gpu) - cpu).max())
    ok = diff < 1e-9
    return {"ok": ok, "detail": f"{rows:,} rows x {trees} trees of depth {depth}: max |diff| {diff:.1e}; "
                                f"gpu {rows/t_gpu/1e6:.0f} M rows/s, cpu {rows/t_cpu/1e6:.2f} M rows/s",
            "gpu_s": t_gpu, "cpu_s": t_cpu}
