"""Grow one regression tree on binned data from gradients and hessians.

The row-index array ``rows`` is kept partitioned by node: each node owns a contiguous range of
positions. Splitting a node partitions its range into a second
buffer (a node at depth ``d`` lives in buffer ``d % 2``; ranges are disjoint, so nothing is copied
back), builds the histogram of the smaller child only and derives the larger child's from the
parent's by subtraction (the parent's histogram slot becomes the larger child's). Work is batched: depth-wise growth handles every node of
a level in one call per kernel; leaf-wise (best-first) growth splits one node per step.

Growth policies
---------------
- ``max_leaves is None``: depth-wise; every node with a valid split is split until ``max_depth``.
- ``max_leaves`` set: best-first; the node with the largest gain is split next until there are
  ``max_leaves`` leaves (and no node deeper than ``max_depth`` when that is set).

A node is considered for splitting only when it has at least ``2 * min_samples_leaf`` rows and a
hessian sum of at least ``2 * min_child_weight``.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from kernels import gbdt_hist, gbdt_partition, gbdt_predict, gbdt_split
from kernels.gbdt_split import SplitParams

__all__ = ["GrowParams", "Tree", "TreeGrower", "kernel_ops"]


@dataclass(frozen=True)
class GrowParams:
    """Shape and regularisation of one tree."""

    max_depth: int | None = 6
    max_leaves: int | None = None
    learning_rate: float = 0.1
    l2_regularization: float = 0.0
    min_child_weight: float = 1e-3
    min_samples_leaf: int = 20
    min_split_gain: float = 0.0

    def split_params(self) -> SplitParams:
        return SplitParams(float(self.l2_regularization), float(self.min_child_weight), int(self.min_samples_leaf), float(self.min_split_gain))


@dataclass
class Tree:
    """One grown tree (host NumPy arrays, nodes in creation order, root 0).

    ``value`` holds the leaf contribution to the raw score (learning rate included; 0 for inner
    nodes); ``gain`` the split gain of inner nodes; ``count`` and ``hessian`` the rows and hessian
    sum of every node. ``leaf_start`` / ``leaf_count`` give each leaf's range of positions in
    row-index buffer ``leaf_parity`` (0: the array the tree was grown on, 1: the grower's second
    buffer); ``leaves`` lists the leaf node ids in the same order. ``device_tree`` numbers a tree
    grown on the device (:mod:`engine.train.gbdt_device`; 0 for the host grower), whose last level
    is not partitioned: its rows are updated from the node table on the device instead.
    """

    feature: np.ndarray
    split_bin: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    gain: np.ndarray
    count: np.ndarray
    hessian: np.ndarray
    leaves: np.ndarray
    leaf_start: np.ndarray
    leaf_count: np.ndarray
    leaf_parity: np.ndarray
    device_tree: int = 0

    @property
    def n_nodes(self) -> int:
        return int(self.feature.shape[0])

    @property
    def n_leaves(self) -> int:
        return int(self.leaves.shape[0])


def kernel_ops(impl: str) -> SimpleNamespace:
    """The kernel twins a grower calls: ``"auto"`` (from the arrays' namespace), ``"cpu"``,
    ``"cuda"`` or ``"reference"``."""
    if impl == "auto":
        return SimpleNamespace(
            build=gbdt_hist.build_histograms, subtract=gbdt_hist.subtract_histograms,
            splits=gbdt_split.find_splits, partition=gbdt_partition.partition_rows,
            add_leaf_values=gbdt_predict.add_leaf_values,
        )
    if impl not in ("cpu", "cuda", "reference"):
        raise ValueError(f"impl: expected auto, cpu, cuda or reference, got {impl!r}")

    return SimpleNamespace(
        build=getattr(gbdt_hist, f"build_histograms_{impl}"),
        subtract=getattr(gbdt_hist, f"subtract_histograms_{impl}"),
        splits=getattr(gbdt_split, f"find_splits_{impl}"),
        partition=getattr(gbdt_partition, f"partition_rows_{impl}"),
        add_leaf_values=getattr(gbdt_predict, f"add_leaf_values_{impl}"),
    )


class _Node:
    __slots__ = ("nid", "start", "count", "depth", "sums", "slot", "gain", "feature", "bin", "missing_left", "left_sums", "left", "right")

    def __init__(self, nid: int, start: int, count: int, depth: int, sums: np.ndarray) -> None:
        self.nid = nid
        self.start = start
        self.count = count
        self.depth = depth
        self.sums = sums
        self.slot = -1
        self.gain = -np.inf
        self.feature = -1
        self.bin = 0
        self.missing_left = 0
        self.left_sums = None
        self.left = -1
        self.right = -1


class TreeGrower:
    """Grows trees on one bin matrix; keeps its histogram pool and buffers between trees.

    Parameters
    ----------
    bins : (rows, features) uint8, NumPy or CuPy
    n_bins : (features,) int
        Value bins per feature.
    params : GrowParams
    impl : str
        Kernel twins (:func:`kernel_ops`).
    levels : bool, optional
        Grow depth-wise trees with the device-resident level kernels
        (:class:`engine.train.gbdt_device.DeviceGrowth`). Default: on CUDA twins, when
        :func:`~engine.train.gbdt_device.device_growth_applies`.
    """

    def __init__(self, bins: Any, n_bins: Any, params: GrowParams, impl: str = "auto", levels: bool | None = None) -> None:
        from engine.backend import get_namespace, to_numpy

        self.bins = bins
        self.xp = get_namespace(bins)
        self.bins_t = self.xp.ascontiguousarray(bins.T)
        self.n_features = int(bins.shape[1])
        self.n_bins = np.asarray(to_numpy(n_bins), dtype=np.int64)
        self.params = params
        self.split_params = params.split_params()
        self.ops = kernel_ops(impl)
        self.pool = gbdt_hist.new_pool(8, self.n_features, self.xp)
        self.free = list(range(8))[::-1]
        self.second = self.xp.empty(bins.shape[0], dtype=np.int32)
        self.first: Any = None
        self.device: Any = None
        if levels is None:
            from engine.train.gbdt_device import device_growth_applies

            on_cuda = impl == "cuda" or (impl == "auto" and self.xp is not np)
            levels = on_cuda and device_growth_applies(params, self.n_features)
        if levels:
            from engine.train.gbdt_device import DeviceGrowth

            self.device = DeviceGrowth(bins, self.bins_t, self.n_bins, params, self.second)

    # ----------------------------------------------------------------------------------- slots
    def _alloc(self) -> int:
        if not self.free:
            old = self.pool.shape[0]
            grown = gbdt_hist.new_pool(old, self.n_features, self.xp)
            self.pool = self.xp.concatenate([self.pool, grown])
            self.free = list(range(old, 2 * old))[::-1]
        return self.free.pop()

    def _release(self, slot: int) -> None:
        if slot >= 0:
            self.free.append(slot)

    # ---------------------------------------------------------------------------------- growth
    def _can_split(self, node: _Node) -> bool:
        p = self.params
        if p.max_depth is not None and node.depth >= p.max_depth:
            return False
        return node.count >= 2 * p.min_samples_leaf and node.sums[1] >= 2 * p.min_child_weight

    def _find(self, nodes: list[_Node], features: np.ndarray) -> None:
        from engine.backend import to_numpy

        if not nodes:
            return
        sums = np.array([n.sums for n in nodes], dtype=np.float64)
        res = self.ops.splits(self.pool, [n.slot for n in nodes], sums, features, self.n_bins, self.split_params)
        k = len(nodes)
        # one device-to-host copy for all outputs (feature, bin and flag are exact in float64)
        packed = self.xp.concatenate([res.gain, res.feature.astype(np.float64), res.bin.astype(np.float64),
                                      res.missing_left.astype(np.float64), res.left.reshape(-1)])
        host = to_numpy(packed)
        gain, feat, sbin, ml = (host[j * k : (j + 1) * k] for j in range(4))
        left = host[4 * k :].reshape(k, 3)
        for i, n in enumerate(nodes):
            n.gain = float(gain[i])
            n.feature = int(feat[i])
            n.bin = int(sbin[i])
            n.missing_left = int(ml[i])
            n.left_sums = np.array(left[i], dtype=np.float64)

    def grow(self, gh: Any, rows: Any, features: Any, defer: bool = False) -> Tree:
        """Grow a tree on the rows ``rows`` (int32; rewritten by the host-driven grower) with the
        gradient / hessian pairs ``gh`` ((rows, 2) float32, indexed by row). ``features`` are the
        candidate features of this tree (sorted ints). :meth:`add_leaf_values` then applies the tree to
        its rows. ``defer`` (device-resident growth only) returns a pending tree without waiting for
        the device; :meth:`collect` returns the grown trees.
        """
        from engine.backend import to_numpy

        p = self.params
        feats = np.asarray(features, dtype=np.int64)
        m = int(rows.shape[0])
        self.first = rows
        if self.device is not None:
            return self.device.grow(gh, rows, feats, defer=defer)
        buf = (self.first, self.second)
        nodes: list[_Node] = []
        root = _Node(0, 0, m, 0, np.zeros(3))
        nodes.append(root)
        root.slot = self._alloc()
        self.ops.build(self.bins, gh, rows, [0], [m], [root.slot], feats, self.pool)
        # summed on the host, bin after bin: the device-resident grower's root kernel adds in the same
        # order (a GPU reduction's order would change the last bits, and with them near-tie splits)
        root.sums = np.asarray(to_numpy(self.pool[root.slot, int(feats[0])]), dtype=np.float64).sum(axis=0)
        root.sums[2] = m
        frontier: list[_Node] = []
        if self._can_split(root):
            self._find([root], feats)
        if root.feature >= 0:
            frontier.append(root)
        else:
            self._release(root.slot)
            root.slot = -1
        n_leaves = 1
        best_first = p.max_leaves is not None
        while frontier:
            if best_first:
                if n_leaves >= p.max_leaves:
                    break
                i = max(range(len(frontier)), key=lambda j: (frontier[j].gain, -frontier[j].nid))
                batch = [frontier.pop(i)]
            else:
                batch, frontier = frontier, []
            n_leaves += len(batch)
            depth = batch[0].depth
            src, dst = buf[depth % 2], buf[(depth + 1) % 2]
            moved = self.ops.partition(
                self.bins_t, src, dst, [n.start for n in batch], [n.count for n in batch], [n.feature for n in batch],
                [n.bin for n in batch], [n.missing_left for n in batch],
            )
            # Each left child's size is its split's left row count (exact in the histogram), so the device
            # partition's own counts need not come back: no wait for the device here. The CPU twin's are
            # on the host already and are checked against them.
            lc = np.array([int(n.left_sums[2]) for n in batch], dtype=np.int64)
            if self.xp is np and not np.array_equal(np.asarray(moved, dtype=np.int64), lc):
                raise RuntimeError(f"partition moved {np.asarray(moved).tolist()} rows left, the splits counted {lc.tolist()}")
            build, sub_parent, sub_child, release_after, to_find = [], [], [], [], []
            for n, nl in zip(batch, lc):
                nl = int(nl)
                ls = n.left_sums.copy()
                ls[2] = nl
                rs = n.sums - ls
                rs[2] = n.count - nl
                left = _Node(len(nodes), n.start, nl, n.depth + 1, ls)
                right = _Node(len(nodes) + 1, n.start + nl, n.count - nl, n.depth + 1, rs)
                n.left, n.right = len(nodes), len(nodes) + 1
                nodes.extend((left, right))
                can_l, can_r = self._can_split(left), self._can_split(right)
                if not (can_l or can_r):
                    self._release(n.slot)
                    n.slot = -1
                    continue
                small, large = (left, right) if left.count <= right.count else (right, left)
                can_large = can_l if large is left else can_r
                can_small = can_r if large is left else can_l
                if can_large:
                    large.slot = n.slot
                    small.slot = self._alloc()
                    sub_parent.append(large.slot)
                    sub_child.append(small.slot)
                    to_find.append(large)
                else:
                    self._release(n.slot)
                    small.slot = self._alloc()
                n.slot = -1
                build.append(small)
                if can_small:
                    to_find.append(small)
                else:
                    release_after.append(small)
            if build:
                self.ops.build(
                    self.bins, gh, dst, [n.start for n in build], [n.count for n in build], [n.slot for n in build], feats, self.pool
                )
            if sub_parent:
                self.ops.subtract(self.pool, sub_parent, sub_child, feats)
            for n in release_after:
                self._release(n.slot)
                n.slot = -1
            to_find.sort(key=lambda n: n.start)
            self._find(to_find, feats)
            for n in to_find:
                if n.feature >= 0:
                    frontier.append(n)
                else:
                    self._release(n.slot)
                    n.slot = -1
            frontier.sort(key=lambda n: n.start)
        for n in frontier:
            self._release(n.slot)
            n.slot = -1
            n.feature = -1
        return self._finish(nodes)

    def collect(self) -> list[Tree]:
        """The trees grown with ``defer`` since the last call, in order."""
        return self.device.collect() if self.device is not None else []

    def _finish(self, nodes: list[_Node]) -> Tree:
        p = self.params
        k = len(nodes)
        feature = np.full(k, -1, np.int32)
        split_bin = np.zeros(k, np.int32)
        missing_left = np.zeros(k, np.uint8)
        left = np.full(k, -1, np.int32)
        right = np.full(k, -1, np.int32)
        value = np.zeros(k, np.float64)
        gain = np.zeros(k, np.float64)
        count = np.zeros(k, np.int64)
        hessian = np.zeros(k, np.float64)
        leaves = []
        for i, n in enumerate(nodes):
            count[i] = n.count
            hessian[i] = n.sums[1]
            if n.left >= 0:
                feature[i] = n.feature
                split_bin[i] = n.bin
                missing_left[i] = n.missing_left
                left[i], right[i] = n.left, n.right
                gain[i] = n.gain
            else:
                den = n.sums[1] + p.l2_regularization
                value[i] = -p.learning_rate * n.sums[0] / den if den > 0 else 0.0
                leaves.append(i)
        leaves = np.asarray(leaves, np.int64)
        return Tree(
            feature, split_bin, missing_left, left, right, value, gain, count, hessian, leaves,
            np.array([nodes[i].start for i in leaves], np.int64), np.array([nodes[i].count for i in leaves], np.int64),
            np.array([nodes[i].depth % 2 for i in leaves], np.int64),
        )

    def add_leaf_values(self, tree: Tree, raw: Any) -> Any:
        """``raw[r] += value`` of the leaf each row ``r`` of the last grown tree fell in (for a tree
        grown on the device: every row of the bin matrix, by its bins)."""
        if tree.device_tree:
            return self.device.add_tree(tree, raw)
        vals = tree.value[tree.leaves]
        for parity, rows in enumerate((self.first, self.second)):
            sel = tree.leaf_parity == parity
            if sel.any():
                self.ops.add_leaf_values(raw, rows, tree.leaf_start[sel], tree.leaf_count[sel], vals[sel])
        return raw

