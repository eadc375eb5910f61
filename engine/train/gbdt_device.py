"""Depth-wise trees grown on the device, a level per launch (:mod:`kernels.gbdt_level`).

:class:`DeviceGrowth` issues a tree's launches without waiting for any of them: their sizes follow
from the row count and the depth alone, and the level plans are kernels. It waits once per tree, for
the copy of the finished node table, which it turns into the host grower's :class:`Tree` (nodes in
the same creation order, so both growers give the same trees from the same histograms).

:class:`engine.train.gbdt_grow.TreeGrower` uses it on CuPy data for depth-wise trees up to
:data:`MAX_DEPTH` deep whose level histograms fit in :data:`POOL_BYTES`; set
``TRIDENT_GBDT_LEVELS=0`` to grow every tree with the host-driven grower instead.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from kernels import gbdt_level as lv
from kernels._cuda import launch

__all__ = ["LEVELS_ENV", "MAX_DEPTH", "POOL_BYTES", "DeviceGrowth", "PendingTree", "device_growth_applies", "tree_from_table"]

#: Deepest tree grown on the device (a level plan handles up to ``kernels.gbdt_level.MAX_LEVEL`` nodes).
MAX_DEPTH = 10
#: Largest memory the two level-histogram pools may take.
POOL_BYTES = 1 << 30
#: Set to ``0`` to turn device-resident growth off.
LEVELS_ENV = "TRIDENT_GBDT_LEVELS"


def pool_bytes(max_depth: int, n_features: int) -> int:
    """Bytes of the two level-histogram pools (``2^(D-1)`` slots each, 256 bins x 3 float64)."""
    return 2 * max(1, 2 ** (max_depth - 1)) * n_features * 256 * 3 * 8


def device_growth_applies(params: Any, n_features: int) -> bool:
    """Whether trees of these :class:`GrowParams` grow on the device: depth-wise, ``1 <= max_depth
    <= MAX_DEPTH``, pools within :data:`POOL_BYTES`, and not turned off by :data:`LEVELS_ENV`."""
    if os.environ.get(LEVELS_ENV, "1") == "0" or params.max_leaves is not None or params.max_depth is None:
        return False
    return 1 <= int(params.max_depth) <= MAX_DEPTH and pool_bytes(int(params.max_depth), n_features) <= POOL_BYTES


def hist_chunk(rows: int, multiprocessors: int, lo: int, hi: int) -> int:
    """Positions per block of a histogram build over about ``rows`` rows: the power of two giving about
    two blocks per multiprocessor (and feature group), within ``[lo, hi]``.

    >>> hist_chunk(1_000_000, 132, 1024, 8192), hist_chunk(500_000, 132, 1024, 8192), hist_chunk(100, 132, 1024, 8192)
    (4096, 2048, 1024)
    """
    want = -(-max(int(rows), 1) // (2 * int(multiprocessors)))
    return int(min(hi, max(lo, 1 << max(0, (want - 1).bit_length()))))


#: Device memory the node tables of deferred trees may take before they are copied back.
PENDING_BYTES = 64 << 20


@dataclass(frozen=True)
class PendingTree:
    """A tree grown with ``defer``: its node table is still on the device (see :meth:`DeviceGrowth.collect`)."""

    device_tree: int


class DeviceGrowth:
    """Grows depth-wise trees on one bin matrix with the level kernels; keeps its buffers between trees.

    Parameters
    ----------
    bins, bins_t : (rows, features) and (features, rows) uint8 device arrays
    n_bins : (features,) int
    params : GrowParams
    second : (rows,) int32 device array
        The second row-index buffer (odd levels).
    """

    def __init__(self, bins: Any, bins_t: Any, n_bins: np.ndarray, params: Any, second: Any) -> None:
        from engine.backend import get_namespace
        from kernels._cuda import multiprocessors, simulator
        from kernels.gbdt_hist import feature_group, new_pool
        from kernels.gbdt_split import scan_threads

        xp = self.xp = get_namespace(bins)
        self.bins, self.bins_t, self.second, self.params = bins, bins_t, second, params
        n, n_features = (int(v) for v in bins.shape)
        self.binsf = xp.ascontiguousarray(bins).reshape(-1)  # flat views: unsigned offsets in the kernels
        self.n_cols = n_features
        self.bins_tf = xp.ascontiguousarray(bins_t).reshape(-1)
        self.n_rows = n
        self.depth = depth = int(params.max_depth)
        sim = simulator()
        self.threads = 32 if sim else 256
        self.split_threads = scan_threads()  # the block scan's size (4 under the simulator)
        self.items = 2 if sim else 16
        self.pchunk = self.threads * self.items
        self.hchunk_min = self.threads * (2 if sim else 4)
        self.hchunk_max = self.threads * (2 if sim else 32)
        self.sms = multiprocessors()
        self.fg = feature_group(n_features)  # (a tree's sampled columns use fewer of its groups)
        self.k = lv.level_kernels(self.fg, self.threads, self.items)
        nodes = 2 ** (depth + 1) - 1
        half = max(1, 2 ** (depth - 1))
        self.ni = xp.zeros((nodes, lv.N_INT), dtype=np.int64)
        self.nf = xp.zeros((nodes, lv.N_FLOAT), dtype=np.float64)
        self.pools = (new_pool(half, n_features, xp), new_pool(half, n_features, xp))
        max_pb = n // self.pchunk + 1 + half
        max_bb = max(-(-n // self.hchunk_min), (n // 2) // self.hchunk_min + 1 + half)
        self.pt = xp.zeros((3, max_pb), dtype=np.int64)
        self.left_off = xp.zeros(max_pb, dtype=np.int64)
        self.right_off = xp.zeros(max_pb, dtype=np.int64)
        self.n_left = xp.zeros(max_pb, dtype=np.int64)
        self.bt = xp.zeros((3, max_bb), dtype=np.int64)
        self.cnt = xp.zeros(4, dtype=np.int64)
        self.t_gain = xp.zeros((half, n_features), dtype=np.float64)
        self.t_bin = xp.zeros((half, n_features), dtype=np.int64)
        self.t_ml = xp.zeros((half, n_features), dtype=np.uint8)
        self.t_left = xp.zeros((half, n_features, 3), dtype=np.float64)
        self.n_bins = xp.asarray(np.asarray(n_bins, dtype=np.int64))
        self.first_buf = xp.empty(n, dtype=np.int32)  # the even levels' row buffer (the rows are copied in)
        self._gh_buf: Any = None  # gradients copied here when the caller's are not C-contiguous
        self._feats: dict[tuple[int, ...], Any] = {}
        self._programs: dict[tuple[Any, ...], tuple[list[Any], list[tuple[Any, ...]]]] = {}
        self._shapes: set[tuple[Any, ...]] = set()
        self.trees_grown = 0
        self._pending: list[tuple[int, Any]] = []  # (tree id, node table on the device) of deferred trees
        self._done: list[Any] = []  # deferred trees already copied back

    def hchunk(self, rows: int) -> int:
        return hist_chunk(rows, self.sms, self.hchunk_min, self.hchunk_max)

    def _features(self, feats: np.ndarray) -> Any:
        key = tuple(int(f) for f in feats)
        d = self._feats.get(key)
        if d is None:
            if len(self._feats) > 64:
                self._feats.clear()
                self._programs.clear()  # they hold the old feature arrays
            d = self._feats[key] = self.xp.asarray(np.asarray(key, dtype=np.int64))
        return d

    def _fill_grid(self, items: int) -> int:
        from kernels.gbdt_launch import launch_blocks

        return launch_blocks(items, self.threads, 1024)

    def grow(self, gh: Any, rows: Any, feats: np.ndarray, defer: bool = False) -> Any:
        """Grow one tree on ``rows`` (int32) with gradient / hessian pairs ``gh``; returns the host
        grower's :class:`~engine.train.gbdt_grow.Tree`, or with ``defer`` a :class:`PendingTree`
        (nothing waits for the device; :meth:`collect` returns the trees later, in one copy).

        The launches of a tree depend only on the row count, the features and the buffers, so the
        second tree of each such shape records them packed (:func:`kernels._cuda.bind`) and later ones
        replay them: a replayed launch costs one driver call.
        """
        from kernels._cuda import bind

        m = int(rows.shape[0])
        first = self.first_buf[:m]
        first[...] = rows
        self.ni.fill(0)
        if not gh.flags.c_contiguous:  # the kernels read a flat view; a replay must see this tree's values
            if self._gh_buf is None or self._gh_buf.shape != gh.shape or self._gh_buf.dtype != gh.dtype:
                self._gh_buf = self.xp.empty(gh.shape, dtype=gh.dtype)
            self._gh_buf[...] = gh
            gh = self._gh_buf
        key = (m, tuple(int(f) for f in feats), _address(gh))
        program = self._programs.get(key)
        if program is not None:
            for call in program[0]:
                call()
        else:
            recorded: list[tuple[Any, ...]] = []
            self._launches(gh, first, feats, recorded)
            if key in self._shapes:  # a shape seen twice is worth packing (sampled rows rarely repeat one)
                calls = [bind(*r) for r in recorded]
                if all(c is not None for c in calls):
                    if len(self._programs) >= 16:
                        self._programs.clear()
                    self._programs[key] = (calls, recorded)  # the records keep the arrays alive
            elif len(self._shapes) < 4096:
                self._shapes.add(key)
        packed = self.xp.concatenate((self.ni, self.nf.view(np.int64)), axis=1)  # a copy, on the device
        self.trees_grown += 1
        if defer:
            self._pending.append((self.trees_grown, packed))
            if len(self._pending) * packed.nbytes > PENDING_BYTES:
                self._done += self._tables(self._pending)
                self._pending = []
            return PendingTree(self.trees_grown)
        return self._tables([(self.trees_grown, packed)])[0]

    def collect(self) -> list[Any]:
        """The trees grown with ``defer`` since the last call, in order (one device-to-host copy)."""
        out = self._done + self._tables(self._pending)
        self._done, self._pending = [], []
        return out

    def _tables(self, items: list[tuple[int, Any]]) -> list[Any]:
        """Trees from (tree id, packed node table on the device) pairs, in one device-to-host copy."""
        from engine.backend import to_numpy

        if not items:
            return []
        host = np.asarray(to_numpy(self.xp.stack([packed for _, packed in items])))
        return [tree_from_table(t[:, : lv.N_INT], np.ascontiguousarray(t[:, lv.N_INT :]).view(np.float64), tid)
                for (tid, _), t in zip(items, host)]

    def _launches(self, gh: Any, rows: Any, feats: np.ndarray, recorded: list[tuple[Any, ...]]) -> None:
        """Launch one tree's kernels (root, then a level at a time), appending each launch's arguments
        to ``recorded``."""
        k, p, t = self.k, self.params, self.threads
        ni, nf, cnt = self.ni, self.nf, self.cnt
        pt0, pt1, pt2 = self.pt
        bt0, bt1, bt2 = self.bt
        m = int(rows.shape[0])
        d_feats = self._features(feats)
        nfa = len(feats)
        groups = -(-nfa // self.fg)
        lr, l2, mcw = float(p.learning_rate), float(p.l2_regularization), float(p.min_child_weight)
        msl, mg = float(p.min_samples_leaf), float(p.min_split_gain)
        depth = self.depth
        bufs = (rows, self.second)

        def go(*args: Any) -> None:
            recorded.append(args)
            launch(*args)

        h0 = self.hchunk(m)
        go(k.root_plan, 1, t, ni, m, h0, bt0, bt1, bt2, cnt)
        go(k.zero_level, self._fill_grid(nfa * 768), t, ni, 0, 1, d_feats, self.pools[0])
        ghf = gh.reshape(-1)
        go(k.build_level, (-(-m // h0), groups), t, self.binsf, self.n_cols, ghf, rows, bt0, bt1, bt2, cnt, 0, d_feats, self.pools[0])
        go(k.root_sums, 1, t, self.pools[0], ni, nf, int(feats[0]), depth, lr, l2, mcw, msl)
        h = self.hchunk(m // 2)
        for d in range(depth):
            first, slots = 2**d - 1, 2**d
            pool = self.pools[d % 2]
            go(k.split_level, slots * nfa, self.split_threads, pool, ni, nf, first, d_feats, self.n_bins,
               l2, mcw, msl, mg, self.t_gain, self.t_bin, self.t_ml, self.t_left)
            go(k.plan_level, 1, t, ni, nf, first, slots, d, depth, d_feats, self.t_gain, self.t_bin, self.t_ml,
               self.t_left, lr, l2, mcw, msl, self.pchunk, h, pt0, pt1, pt2, self.left_off, self.right_off,
               bt0, bt1, bt2, cnt)
            if d == depth - 1:
                break  # the last level's children are leaves: no partition, no histograms
            src, dst = bufs[d % 2], bufs[(d + 1) % 2]
            gp = m // self.pchunk + 1 + slots
            go(k.count_level, gp, t, self.bins_tf, self.n_rows, src, pt0, pt1, pt2, cnt, ni, self.n_left)
            go(k.offsets_level, 1, t, pt0, pt1, pt2, cnt, self.n_left, self.left_off, self.right_off)
            go(k.scatter_level, gp, t, self.bins_tf, self.n_rows, src, dst, pt0, pt1, pt2, cnt, ni, self.left_off, self.right_off)
            nfirst, nslots, npool = 2 * first + 1, 2 * slots, self.pools[(d + 1) % 2]
            go(k.zero_level, self._fill_grid(nslots * nfa * 768), t, ni, nfirst, nslots, d_feats, npool)
            gb = (m // 2) // h + 1 + slots
            go(k.build_level, (gb, groups), t, self.binsf, self.n_cols, ghf, dst, bt0, bt1, bt2, cnt, nfirst, d_feats, npool)
            go(k.subtract_level, self._fill_grid(nslots * nfa * 768), t, ni, nfirst, nslots, d_feats, pool, npool)

    def add_tree(self, tree: Any, raw: Any, bins: Any = None) -> Any:
        """``raw[r] += value`` of the leaf each row ``r`` of ``bins`` (default: the training bin matrix)
        falls in, for the last tree grown (its node table is still on the device)."""
        if tree.device_tree != self.trees_grown:
            raise RuntimeError("add_leaf_values: the tree is not the last one grown on the device")
        from kernels._cuda import grid_threads

        nb, nt = grid_threads()
        if raw.shape[0]:
            launch(self.k.add_tree, nb, nt, self.bins if bins is None else bins, self.ni, self.nf, raw)
        return raw


def _address(a: Any) -> int:
    """Where an array's data lives (CuPy: its device pointer; NumPy: its buffer address)."""
    data = getattr(a, "data", None)
    ptr = getattr(data, "ptr", None)
    return int(ptr) if ptr is not None else int(a.__array_interface__["data"][0])


def tree_from_table(ni: np.ndarray, nf: np.ndarray, tree_id: int = 0) -> Any:
    """The host grower's :class:`Tree` from a heap node table: nodes numbered in the host grower's
    creation order (breadth-first, left child first)."""
    from engine.train.gbdt_grow import Tree

    order = [0]
    i = 0
    while i < len(order):
        h = order[i]
        i += 1
        if ni[h, lv.STATE] == lv.SPLIT:
            order += [2 * h + 1, 2 * h + 2]
    heap = np.asarray(order, dtype=np.int64)
    pos = np.full(ni.shape[0], -1, np.int64)
    pos[heap] = np.arange(heap.size)
    split = ni[heap, lv.STATE] == lv.SPLIT
    k = heap.size
    feature = np.where(split, ni[heap, lv.FEAT], -1).astype(np.int32)
    split_bin = np.where(split, ni[heap, lv.BIN], 0).astype(np.int32)
    missing_left = np.where(split, ni[heap, lv.ML], 0).astype(np.uint8)
    left = np.full(k, -1, np.int32)
    right = np.full(k, -1, np.int32)
    left[split] = pos[2 * heap[split] + 1]
    right[split] = pos[2 * heap[split] + 2]
    value = np.where(split, 0.0, nf[heap, lv.VALUE])
    gain = np.where(split, nf[heap, lv.GAIN], 0.0)
    leaves = np.flatnonzero(~split).astype(np.int64)
    depth = np.floor(np.log2(heap + 1)).astype(np.int64)
    return Tree(
        feature, split_bin, missing_left, left, right, value, gain, ni[heap, lv.COUNT].astype(np.int64),
        nf[heap, lv.H].astype(np.float64), leaves, ni[heap[leaves], lv.START].astype(np.int64),
        ni[heap[leaves], lv.COUNT].astype(np.int64), depth[leaves] % 2, device_tree=tree_id,
    )
