"""The host side of device-resident tree growth: when it applies, how the heap node table becomes the
host grower's tree, and the histogram block size. (The level kernels themselves run under the CUDA
simulator in ``tests/cudasim/test_gbdt_cuda.py`` and on a GPU in ``bench/gpu_check.py``.)"""
from __future__ import annotations

import numpy as np
import pytest

from engine.train import gbdt_device as D
from engine.train.gbdt_grow import GrowParams, TreeGrower
from kernels import gbdt_level as lv


def test_device_growth_applies_to_depth_wise_trees_that_fit(monkeypatch):
    monkeypatch.delenv(D.LEVELS_ENV, raising=False)
    assert D.device_growth_applies(GrowParams(max_depth=6), 20)
    assert D.device_growth_applies(GrowParams(max_depth=D.MAX_DEPTH), 20)
    assert not D.device_growth_applies(GrowParams(max_depth=D.MAX_DEPTH + 1), 20)
    assert not D.device_growth_applies(GrowParams(max_depth=None, max_leaves=31), 20)  # best-first
    assert not D.device_growth_applies(GrowParams(max_depth=6, max_leaves=31), 20)
    assert not D.device_growth_applies(GrowParams(max_depth=None), 20)
    assert not D.device_growth_applies(GrowParams(max_depth=10), 5000)  # pools over POOL_BYTES
    assert D.pool_bytes(10, 5000) > D.POOL_BYTES >= D.pool_bytes(6, 20)
    monkeypatch.setenv(D.LEVELS_ENV, "0")
    assert not D.device_growth_applies(GrowParams(max_depth=6), 20)


def test_host_data_keeps_the_host_driven_grower():
    bins = np.zeros((50, 3), np.uint8)
    assert TreeGrower(bins, np.full(3, 4), GrowParams(max_depth=3)).device is None


def _table(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((nodes, lv.N_INT), np.int64), np.zeros((nodes, lv.N_FLOAT), np.float64)


def test_a_heap_table_becomes_the_tree_in_creation_order():
    # heap: root 0 splits; its left child 1 is a leaf, its right child 2 splits into 5 and 6
    ni, nf = _table(7)
    for h, (start, count) in {0: (0, 100), 1: (0, 40), 2: (40, 60), 5: (40, 25), 6: (65, 35)}.items():
        ni[h, lv.START], ni[h, lv.COUNT], ni[h, lv.STATE] = start, count, lv.LEAF
        nf[h, lv.H] = count / 4
        nf[h, lv.VALUE] = -h / 10
    for h, (feat, b, ml, gain) in {0: (3, 7, 1, 2.5), 2: (0, 2, 0, 1.25)}.items():
        ni[h, lv.STATE], ni[h, lv.FEAT], ni[h, lv.BIN], ni[h, lv.ML] = lv.SPLIT, feat, b, ml
        nf[h, lv.GAIN] = gain
    ni[3, lv.START] = 99  # an absent node's leftovers are ignored
    tree = D.tree_from_table(ni, nf, tree_id=4)
    # creation order: 0, its children 1 and 2, then 2's children 5 and 6 -> ids 0..4
    assert tree.feature.tolist() == [3, -1, 0, -1, -1]
    assert tree.split_bin.tolist() == [7, 0, 2, 0, 0]
    assert tree.missing_left.tolist() == [1, 0, 0, 0, 0]
    assert tree.left.tolist() == [1, -1, 3, -1, -1]
    assert tree.right.tolist() == [2, -1, 4, -1, -1]
    assert tree.value.tolist() == [0.0, -0.1, 0.0, -0.5, -0.6]
    assert tree.gain.tolist() == [2.5, 0.0, 1.25, 0.0, 0.0]
    assert tree.count.tolist() == [100, 40, 60, 25, 35]
    assert tree.hessian.tolist() == [25.0, 10.0, 15.0, 6.25, 8.75]
    assert tree.leaves.tolist() == [1, 3, 4]
    assert tree.leaf_start.tolist() == [0, 40, 65]
    assert tree.leaf_count.tolist() == [40, 25, 35]
    assert tree.leaf_parity.tolist() == [1, 0, 0]  # depths 1, 2, 2
    assert tree.device_tree == 4 and tree.n_nodes == 5 and tree.n_leaves == 3


def test_a_root_that_does_not_split_is_a_one_leaf_tree():
    ni, nf = _table(3)
    ni[0, lv.COUNT], ni[0, lv.STATE] = 10, lv.LEAF
    nf[0, lv.VALUE] = 0.75
    tree = D.tree_from_table(ni, nf)
    assert tree.n_nodes == 1 and tree.leaves.tolist() == [0] and tree.value.tolist() == [0.75]


@pytest.mark.parametrize(("rows", "want"), [(1_000_000, 4096), (500_000, 2048), (10, 1024), (10**9, 8192)])
def test_histogram_blocks_are_a_power_of_two_near_two_per_multiprocessor(rows, want):
    assert D.hist_chunk(rows, 132, 1024, 8192) == want
