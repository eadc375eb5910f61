"""The CUDA twins of the gradient-boosted-tree kernels under the Numba CUDA simulator (tiny grids, in a
subprocess), against their CPU twins and NumPy references; then a whole tree grown with the CUDA twins
(host-driven, and device-resident a level per launch) against the same tree grown with the CPU twins."""
from __future__ import annotations

KERNELS = """
import numpy as np
from kernels import gbdt_binning as B, gbdt_hist as H, gbdt_loss as L, gbdt_partition as P, gbdt_predict as PR, gbdt_split as S

rng = np.random.default_rng(3)
n, f = 160, 5
x = rng.normal(size=(n, f)).astype(np.float32)
x[rng.random((n, f)) < 0.1] = np.nan
x[:, 1] = np.round(x[:, 1])
x[0, 0], x[1, 0] = np.inf, -np.inf
edges, nb = B.bin_edges(x, 16)
ref = B.apply_bins_reference(x, edges, nb)
assert np.array_equal(B.apply_bins_cpu(x, edges, nb), ref)
assert np.array_equal(B.apply_bins_cuda(x, edges, nb, blocks=2, threads=32), ref), "binning"

raw = rng.normal(size=n)
y = (rng.random(n) < 0.4).astype(np.float32)
for loss in ("log_loss", "squared_error"):
    want = L.gradients_reference(loss, raw, y)
    np.testing.assert_allclose(L.gradients_cpu(loss, raw, y), want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(L.gradients_cuda(loss, raw, y, blocks=2, threads=32), want, rtol=1e-6, atol=1e-7)
gh = L.gradients_reference("log_loss", raw, y)

rows = np.sort(rng.choice(n, 150, replace=False)).astype(np.int32)
starts, counts, slots = np.array([0, 60, 75]), np.array([60, 15, 75]), np.array([2, 0, 1])
feats = np.array([0, 1, 3, 4])
h_ref, h_cpu, h_gpu = H.new_pool(4, f), H.new_pool(4, f), H.new_pool(4, f)
h_gpu[:] = 7.0
H.build_histograms_reference(ref, gh, rows, starts, counts, slots, feats, h_ref)
H.build_histograms_cpu(ref, gh, rows, starts, counts, slots, feats, h_cpu)
H.build_histograms_cuda(ref, gh, rows, starts, counts, slots, feats, h_gpu)
sel = np.zeros((4, f), bool)
sel[slots[:, None], feats[None, :]] = True
np.testing.assert_allclose(h_cpu[sel], h_ref[sel], atol=1e-9)
np.testing.assert_allclose(h_gpu[sel], h_ref[sel], rtol=1e-6, atol=1e-6)
assert np.all(h_gpu[~sel] == 7.0), "histogram wrote outside its slots and features"
np.testing.assert_array_equal(h_gpu[sel][..., 2], h_ref[sel][..., 2])

for sub in (H.subtract_histograms_cpu, H.subtract_histograms_cuda):
    z = h_ref.copy()
    sub(z, [2], [0], feats)
    np.testing.assert_allclose(z[2][feats], h_ref[2][feats] - h_ref[0][feats], atol=1e-12)
    assert np.array_equal(z[3], h_ref[3])

sums = np.stack([h_ref[s, 0].sum(axis=0) for s in slots])
params = S.SplitParams(l2=0.5, min_samples_leaf=5, min_child_weight=0.01)
s_ref = S.find_splits_reference(h_ref, slots, sums, feats, nb, params)
s_cpu = S.find_splits_cpu(h_ref, slots, sums, feats, nb, params)
s_gpu = S.find_splits_cuda(h_ref, slots, sums, feats, nb, params)
for a, b, c in zip(s_ref, s_cpu, s_gpu):
    np.testing.assert_allclose(np.asarray(b, float), np.asarray(a, float), rtol=1e-9)
    np.testing.assert_array_equal(np.asarray(c), np.asarray(b))
assert np.all(s_ref.feature >= 0)

# A histogram made by subtraction can hold a slightly negative hessian: the right side then fails the
# min_child_weight test at bin 2 and passes again at bin 4. The sequential scan stops at bin 2; the
# block scan must not accept bin 4 (the larger gain) either.
hn = H.new_pool(1, 1)
hn[0, 0, :6, 0] = [0.0, 0.0, 0.0, 0.0, 0.0, -5.0]
hn[0, 0, :6, 1] = [2.0, 2.0, 5.5, 0.2, -0.4, 0.7]
hn[0, 0, :6, 2] = 20.0
sums_n = hn[0, 0].sum(axis=0)[None]
pn = S.SplitParams(l2=0.5, min_samples_leaf=1, min_child_weight=0.6)
a = S.find_splits_cpu(hn, np.array([0]), sums_n, np.array([0]), np.array([6]), pn)
b = S.find_splits_cuda(hn, np.array([0]), sums_n, np.array([0]), np.array([6]), pn)
assert int(a.bin[0]) == 1, a
for x_, y_ in zip(a, b):
    np.testing.assert_array_equal(np.asarray(y_), np.asarray(x_))

bins_t = np.ascontiguousarray(ref.T)
outs = []
for part in (P.partition_rows_reference, P.partition_rows_cpu, P.partition_rows_cuda):
    o = np.full_like(rows, -1)
    lc = part(bins_t, rows, o, starts, counts, s_ref.feature, s_ref.bin, s_ref.missing_left)
    outs.append((np.asarray(lc), o))
for lc, o in outs[1:]:
    np.testing.assert_array_equal(lc, outs[0][0])
    np.testing.assert_array_equal(o, outs[0][1])
np.testing.assert_array_equal(outs[0][0], s_ref.left[:, 2].astype(np.int64))

forest = PR.Forest(np.array([0, 3]), np.array([0, -1, -1, 1, -1, -1], np.int32),
                   np.array([edges[0, 2], 0, 0, np.inf, 0, 0], np.float32), np.array([2, 0, 0, nb[1] - 1, 0, 0], np.int32),
                   np.array([1, 0, 0, 0, 0, 0], np.uint8), np.array([1, 0, 0, 1, 0, 0], np.int32),
                   np.array([2, 0, 0, 2, 0, 0], np.int32), np.array([0, -1.0, 1.0, 0, 0.25, -0.5]))
want = PR.predict_raw_reference(x, forest, np.zeros(n))
np.testing.assert_allclose(PR.predict_raw_cpu(x, forest, np.zeros(n)), want)
np.testing.assert_allclose(PR.predict_raw_cuda(x, forest, np.zeros(n), blocks=2, threads=32), want)
np.testing.assert_allclose(PR.predict_binned_cuda(ref, forest, np.zeros(n), blocks=2, threads=32), want)
leaf = PR.add_leaf_values_reference(np.zeros(n), rows, starts, counts, [1.0, 2.0, 3.0])
np.testing.assert_array_equal(PR.add_leaf_values_cuda(np.zeros(n), rows, starts, counts, [1.0, 2.0, 3.0]), leaf)
print("ok")
"""

GROWER = """
import numpy as np
from engine.train.gbdt_grow import GrowParams, TreeGrower
from kernels.gbdt_binning import apply_bins_reference, bin_edges
from kernels.gbdt_loss import gradients_reference

rng = np.random.default_rng(8)
n = 120
x = rng.normal(size=(n, 3)).astype(np.float32)
x[rng.random((n, 3)) < 0.1] = np.nan
y = ((np.nan_to_num(x[:, 0]) + x[:, 1] > 0) | np.isnan(x[:, 0])).astype(np.float32)
edges, nb = bin_edges(x, 12)
bins = apply_bins_reference(x, edges, nb)
gh = gradients_reference("log_loss", np.zeros(n), y)
for params in (GrowParams(max_depth=2, min_samples_leaf=8), GrowParams(max_depth=None, max_leaves=4, min_samples_leaf=8)):
    out = []
    for impl in ("cpu", "cuda"):
        grower = TreeGrower(bins, nb, params, impl=impl, levels=False)
        tree = grower.grow(gh, np.arange(n, dtype=np.int32), np.arange(3))
        out.append((tree, grower.add_leaf_values(tree, np.zeros(n))))
    (a, ra), (b, rb) = out
    assert a.n_leaves >= 3, a.n_leaves
    for name in ("feature", "split_bin", "missing_left", "left", "right", "count"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_allclose(b.value, a.value, rtol=1e-5)
    np.testing.assert_allclose(rb, ra, rtol=1e-5)
print("ok")
"""

LEVELS = """
import numpy as np
from engine.train.gbdt_grow import GrowParams, TreeGrower
from kernels.gbdt_binning import apply_bins_reference, bin_edges
from kernels.gbdt_loss import gradients_reference

rng = np.random.default_rng(8)
n = 300
x = rng.normal(size=(n, 4)).astype(np.float32)
x[rng.random((n, 4)) < 0.1] = np.nan
x[:, 3] = np.where(rng.random(n) < 0.5, np.nan, 1.0)  # one value and missing: a split on missingness only
y = ((np.nan_to_num(x[:, 0]) + x[:, 1] > 0) | np.isnan(x[:, 0])).astype(np.float32)
edges, nb = bin_edges(x, 12)
bins = apply_bins_reference(x, edges, nb)
raw0 = rng.normal(size=n) * 0.3
gh = gradients_reference("log_loss", raw0, y)
cases = (
    (GrowParams(max_depth=3, min_samples_leaf=8), np.arange(n), np.arange(4)),
    # rows subsampled, a column subset, L2, a minimum child weight that stops some nodes
    (GrowParams(max_depth=4, min_samples_leaf=5, l2_regularization=1.0, min_child_weight=2.0),
     np.sort(rng.choice(n, 200, replace=False)), np.array([0, 2, 3])),
    (GrowParams(max_depth=1, min_samples_leaf=5), np.arange(n), np.arange(4)),
    # a gain threshold no split reaches: the root stays a leaf
    (GrowParams(max_depth=3, min_split_gain=1e9), np.arange(n), np.arange(4)),
)
for params, rows, feats in cases:
    rows = rows.astype(np.int32)
    out = []
    for impl, levels in (("cpu", False), ("cuda", True)):
        grower = TreeGrower(bins, nb, params, impl=impl, levels=levels)
        assert (grower.device is not None) == levels
        tree = grower.grow(gh, rows.copy(), feats)
        assert bool(tree.device_tree) == levels
        out.append((tree, grower.add_leaf_values(tree, raw0.copy())))
    (a, ra), (b, rb) = out
    for name in ("feature", "split_bin", "missing_left", "left", "right", "count", "leaves"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("value", "gain", "hessian"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-5, atol=1e-7, err_msg=name)
    grown = np.zeros(n, bool)
    grown[rows] = True  # the device tree updates every row; the host tree the rows it grew on
    np.testing.assert_allclose(rb[grown], ra[grown], rtol=1e-5, atol=1e-7)  # float32 block sums
    assert a.n_leaves == (1 if params.min_split_gain > 1 else a.n_leaves)

# Replayed trees: with the direct launch path (here: a stand-in that relaunches the recorded
# arguments), the second tree of a shape is packed and later ones replay it. New gradients in the same
# buffer and a new row array each tree must give the trees the CPU twins grow from them, also when the
# buffer is a strided view (its flat copy must be refreshed, not replayed).
import kernels._cuda as kc

kc.bind = lambda kernel, grid, block, *args: (lambda: kc.launch(kernel, grid, block, *args))
params = GrowParams(max_depth=3, min_samples_leaf=8)
for g in (np.empty_like(gh), np.zeros((n, 3), gh.dtype)[:, :2]):
    dev = TreeGrower(bins, nb, params, impl="cuda", levels=True)
    cpu = TreeGrower(bins, nb, params, impl="cpu", levels=False)
    raw = raw0.copy()
    for it in range(4):
        g[:] = gradients_reference("log_loss", raw, y)
        a = cpu.grow(np.ascontiguousarray(g), np.arange(n, dtype=np.int32), np.arange(4))
        b = dev.grow(g, np.arange(n, dtype=np.int32), np.arange(4))
        for name in ("feature", "split_bin", "missing_left", "left", "right", "count"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=f"tree {it}: {name}")
        np.testing.assert_allclose(b.value, a.value, rtol=1e-5, atol=1e-7)
        raw = cpu.add_leaf_values(a, raw)
    assert len(dev.device._programs) == 1, "the shape was not packed for replay"
print("ok")
"""

FIT = """
import cupy
import numpy as np
from engine import backend
from engine.train.gbdt import TridentGBDTClassifier

rng = np.random.default_rng(1)
n = 240
X = rng.normal(size=(n, 4)).astype(np.float32)
X[rng.random((n, 4)) < 0.05] = np.nan
y = (np.nan_to_num(X[:, 0]) - X[:, 2] + rng.normal(size=n) * 0.5 > 0).astype(int)
kw = dict(n_estimators=3, max_depth=2, learning_rate=0.3, min_samples_leaf=10, max_bins=16, random_state=0)
to_numpy = backend.to_numpy


def device_fit(**params):
    # the fit on device input, and how many device-to-host copies it made
    waits = []
    backend.to_numpy = lambda a: (waits.append(type(a).__module__.startswith("cupy")), to_numpy(a))[1]
    try:
        est = TridentGBDTClassifier(**{**kw, **params}).fit(cupy.asarray(X), cupy.asarray(y))
    finally:
        backend.to_numpy = to_numpy
    return est, sum(waits)


for params in ({}, {"subsample": 0.8, "colsample": 0.75}):
    cpu = TridentGBDTClassifier(**{**kw, **params}).fit(X, y)
    gpu, _ = device_fit(**params)
    for k in ("feature", "split_bin", "missing_left", "left", "right"):
        np.testing.assert_array_equal(cpu.trees_[k], gpu.trees_[k], err_msg=k)
    np.testing.assert_allclose(gpu.trees_["value"], cpu.trees_["value"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(gpu.predict_proba(X)), cpu.predict_proba(X), rtol=1e-5)
waits = {trees: device_fit(n_estimators=trees)[1] for trees in (1, 3)}
print("waits per tree", (waits[3] - waits[1]) / 2)
es = {trees: device_fit(n_estimators=trees, early_stopping=True, n_iter_no_change=50)[1] for trees in (1, 3)}
print("early stopping waits per tree", (es[3] - es[1]) / 2)

from bench.gbdt import LEVEL_FAMILIES, device_times

times = device_times(lambda: TridentGBDTClassifier(**{**kw, "n_estimators": 1}), cupy.asarray(X), cupy.asarray(y))
assert set(LEVEL_FAMILIES.values()) <= set(times["calls"]), times["calls"]
assert times["calls"]["level plans"] == 3, times["calls"]  # the root's and one a level (depth 2)
"""

def test_gbdt_cuda_twins_equal_cpu_twins_and_references(cudasim):
    proc = cudasim(KERNELS)
    assert proc.stdout.strip().endswith("ok")


def test_a_tree_grown_with_cuda_twins_equals_the_cpu_tree(cudasim):
    proc = cudasim(GROWER)
    assert proc.stdout.strip().endswith("ok")


def test_a_tree_grown_a_level_per_launch_equals_the_cpu_tree(cudasim):
    proc = cudasim(LEVELS)
    assert proc.stdout.strip().endswith("ok")


def test_a_device_grown_fit_equals_the_cpu_fit_and_waits_for_the_device_only_at_the_end(cudasim):
    """trident_gbdt on (stand-in) CuPy input grows its trees a level per launch: the same trees and
    probabilities as on NumPy input (rows and columns sampled or not); no device-to-host copy per tree
    (the node tables come back at the end), one per tree with early stopping (it needs each tree)."""
    from pathlib import Path

    standin = Path(__file__).resolve().parents[1] / "cupy_standin"
    proc = cudasim(f"import sys; sys.path.insert(0, {str(standin)!r})\n" + FIT)
    lines = dict(line.rsplit(" ", 1) for line in proc.stdout.splitlines() if "waits per tree" in line)
    assert float(lines["waits per tree"]) == 0.0, proc.stdout
    assert float(lines["early stopping waits per tree"]) == 1.0, proc.stdout
