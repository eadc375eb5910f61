"""The gradient-boosted-tree kernels: each CPU twin against its NumPy reference, plus the rules
(bin edges, gain, constraints, missing values, stable partition) checked by hand."""
from __future__ import annotations

import numpy as np
import pytest

from kernels import gbdt_binning as B
from kernels import gbdt_hist as H
from kernels import gbdt_loss as L
from kernels import gbdt_partition as P
from kernels import gbdt_predict as PR
from kernels import gbdt_split as S


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    n, f = 3000, 6
    x = rng.normal(size=(n, f)).astype(np.float32)
    x[:, 2] = np.round(x[:, 2] * 2)  # few distinct values
    x[:, 4] = rng.exponential(size=n) ** 3  # skewed
    x[rng.random((n, f)) < 0.07] = np.nan
    x[:, 5] = 1.0  # constant
    edges, n_bins = B.bin_edges(x, 64)
    bins = B.apply_bins_reference(x, edges, n_bins)
    raw = rng.normal(size=n)
    y = (rng.random(n) < 0.35).astype(np.float32)
    gh = L.gradients_reference("log_loss", raw, y)
    return {"x": x, "edges": edges, "n_bins": n_bins, "bins": bins, "raw": raw, "y": y, "gh": gh, "rng": rng}


# ------------------------------------------------------------------------------------ binning
def test_bin_edges_are_increasing_float32_and_at_most_max_bins_minus_one(data):
    e, nb = data["edges"], data["n_bins"]
    assert e.dtype == np.float32 and e.shape == (6, B.EDGE_SLOTS)
    for j in range(6):
        k = nb[j] - 1
        assert 0 <= k <= 63
        assert np.all(np.diff(e[j, :k]) > 0)
        assert np.all(np.isposinf(e[j, k:]))
    assert nb[5] == 1  # a constant feature has a single value bin


def test_quantile_edges_equal_numpy_percentile_midpoint_on_random_columns():
    """The edges come from sorted columns with NumPy's own midpoint interpolation, without its
    partition: equal to ``np.percentile(..., method="midpoint")`` bit for bit."""
    rng = np.random.default_rng(5)
    for trial in range(400):
        n = int(rng.integers(1, 3000))
        kind = trial % 4
        if kind == 0:
            col = rng.normal(size=n) * 10.0 ** rng.integers(-20, 20)
        elif kind == 1:
            col = rng.integers(0, int(rng.integers(1, 600)), size=n).astype(float)  # heavy ties
        elif kind == 2:
            col = rng.standard_cauchy(size=n)
        else:
            col = np.round(rng.normal(size=n), 2)
        col = col.astype(np.float32)
        ordered = np.sort(col)
        q = np.linspace(0.0, 100.0, int(rng.integers(2, 256)) + 1)[1:-1]
        want = np.percentile(ordered.astype(np.float64), q, method="midpoint")
        np.testing.assert_array_equal(B._percentile_midpoint(ordered, q), want)


def test_bin_edges_skip_infinities_and_missing_values_like_the_finite_column():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(5000, 1)).astype(np.float32)
    x[:300] = rng.integers(0, 3, 300)[:, None].astype(np.float32)  # ties
    dirty = np.concatenate([x, [[np.inf], [-np.inf], [np.nan], [np.inf]]]).astype(np.float32)
    e1, nb1 = B.bin_edges(x, 64, subsample=None)
    e2, nb2 = B.bin_edges(dirty[rng.permutation(len(dirty))], 64, subsample=None)
    np.testing.assert_array_equal(e1, e2)
    assert nb1.tolist() == nb2.tolist() == [64]


def test_bin_edges_of_few_distinct_values_fall_between_neighbours():
    e, nb = B.bin_edges(np.array([[3.0], [1.0], [2.0], [2.0], [np.nan]], np.float32), max_bins=8)
    assert e[0, : nb[0] - 1].tolist() == [1.5, 2.5]


def test_bin_edge_is_rounded_down_so_it_separates_adjacent_float32_values():
    a = np.float32(1.0)
    b = np.nextafter(a, np.float32(2.0))
    e, nb = B.bin_edges(np.array([[a], [b]], np.float32), max_bins=4)
    edge = e[0, 0]
    assert a <= edge < b


def test_apply_bins_cpu_equals_reference_with_nan_and_infinities(data):
    x = data["x"].copy()
    x[:3, 0] = [np.inf, -np.inf, np.nan]
    ref = B.apply_bins_reference(x, data["edges"], data["n_bins"])
    assert np.array_equal(B.apply_bins_cpu(x, data["edges"], data["n_bins"]), ref)
    assert ref[2, 0] == B.MISSING_BIN and ref[1, 0] == 0 and ref[0, 0] == data["n_bins"][0] - 1


def test_bin_at_most_b_is_the_same_as_value_at_most_edge_b(data):
    x, e, nb, bins = data["x"], data["edges"], data["n_bins"], data["bins"]
    for j in range(5):
        ok = ~np.isnan(x[:, j])
        for b in range(nb[j] - 1):
            assert np.array_equal(bins[ok, j] <= b, x[ok, j] <= e[j, b])


def test_bin_edges_reject_max_bins_above_255():
    with pytest.raises(ValueError, match="max_bins"):
        B.bin_edges(np.zeros((4, 1), np.float32), max_bins=256)


# --------------------------------------------------------------------------------------- loss
@pytest.mark.parametrize("loss", ["log_loss", "squared_error"])
def test_gradients_cpu_equal_reference(data, loss):
    ref = L.gradients_reference(loss, data["raw"], data["y"])
    got = L.gradients_cpu(loss, data["raw"], data["y"])
    assert got.shape == (3000, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)


def test_log_loss_gradient_is_probability_minus_label():
    gh = L.gradients("log_loss", np.array([0.0, np.log(3.0)]), np.array([1.0, 0.0], np.float32))
    np.testing.assert_allclose(gh, [[-0.5, 0.25], [0.75, 0.1875]], rtol=1e-6)


# ---------------------------------------------------------------------------------- histograms
def _nodes(rng, n):
    rows = np.sort(rng.choice(n, 2400, replace=False)).astype(np.int32)
    starts = np.array([0, 900, 950, 1700])
    counts = np.array([900, 50, 750, 700])
    slots = np.array([4, 0, 2, 1])
    return rows, starts, counts, slots


def test_histograms_cpu_equal_reference_and_leave_other_slots_alone(data):
    rows, starts, counts, slots = _nodes(data["rng"], 3000)
    feats = np.array([0, 2, 3, 4])
    ref = H.new_pool(5, 6)
    got = H.new_pool(5, 6)
    got[:] = -1.0
    H.build_histograms_reference(data["bins"], data["gh"], rows, starts, counts, slots, feats, ref)
    H.build_histograms_cpu(data["bins"], data["gh"], rows, starts, counts, slots, feats, got)
    sel = np.zeros((5, 6), bool)
    sel[slots[:, None], feats[None, :]] = True
    np.testing.assert_allclose(got[sel], ref[sel], rtol=1e-12, atol=1e-9)
    assert np.all(got[~sel] == -1.0)
    assert np.all(got[slots[0], 0, :, 2].sum() == counts[0])


def test_histogram_of_one_node_counts_each_row_once_per_feature(data):
    hist = H.build_histograms(data["bins"], data["gh"], np.arange(3000, dtype=np.int32), [0], [3000], [0], np.arange(6), H.new_pool(1, 6))
    np.testing.assert_array_equal(hist[0, :, :, 2].sum(axis=1), np.full(6, 3000.0))
    np.testing.assert_allclose(hist[0, :, :, 0].sum(axis=1), np.full(6, data["gh"][:, 0].astype(np.float64).sum()), rtol=1e-9)


def test_subtraction_gives_the_sibling_histogram(data):
    rng = data["rng"]
    parent = np.sort(rng.choice(3000, 1000, replace=False)).astype(np.int32)
    small, large = parent[:300], parent[300:]
    feats = np.arange(6)
    hist = H.new_pool(3, 6)
    H.build_histograms_cpu(data["bins"], data["gh"], np.concatenate([parent, small, large]), [0, 1000, 1300], [1000, 300, 700], [0, 1, 2], feats, hist)
    H.subtract_histograms_cpu(hist, [0], [1], feats)
    np.testing.assert_allclose(hist[0], hist[2], atol=1e-9)


# -------------------------------------------------------------------------------------- splits
def test_find_splits_cpu_equals_reference(data):
    rows, starts, counts, slots = _nodes(data["rng"], 3000)
    feats = np.array([0, 1, 2, 3, 4, 5])
    hist = H.build_histograms_reference(data["bins"], data["gh"], rows, starts, counts, slots, feats, H.new_pool(5, 6))
    sums = np.stack([hist[s, 0].sum(axis=0) for s in slots])
    for params in (S.SplitParams(), S.SplitParams(l2=2.0, min_samples_leaf=5, min_child_weight=0.5)):
        ref = S.find_splits_reference(hist, slots, sums, feats, data["n_bins"], params)
        got = S.find_splits_cpu(hist, slots, sums, feats, data["n_bins"], params)
        for a, b in zip(ref, got):
            np.testing.assert_allclose(np.asarray(b, np.float64), np.asarray(a, np.float64), rtol=1e-9)
        assert np.all(ref.feature >= 0)


def _hand_hist(rows, missing=()):
    """A one-feature histogram from (bin, g, h) rows; ``missing`` (g, h) rows go to bin 255."""
    hist = H.new_pool(1, 1)
    for b, gi, hi in list(rows) + [(255, gi, hi) for gi, hi in missing]:
        hist[0, 0, b] += (gi, hi, 1.0)
    return hist


def test_gain_is_the_l2_regularised_second_order_gain():
    hist = _hand_hist([(0, -1.0, 1.0), (0, -1.0, 1.0), (1, 2.0, 1.0), (1, 1.0, 1.0)])
    out = S.find_splits(hist, [0], [[1.0, 4.0, 4.0]], [0], [2], S.SplitParams(l2=1.0, min_samples_leaf=1))
    expected = 2.0**2 / 3.0 + 3.0**2 / 3.0 - 1.0**2 / 5.0
    assert float(out.gain[0]) == pytest.approx(expected)
    assert int(out.bin[0]) == 0 and out.left[0].tolist() == [-2.0, 2.0, 2.0]


def test_min_samples_leaf_and_min_child_weight_reject_small_children():
    hist = _hand_hist([(0, -5.0, 0.1), (1, 1.0, 1.0), (1, 1.0, 1.0), (2, 1.0, 1.0), (2, 1.0, 1.0)])
    sums = [[-1.0, 4.1, 5.0]]
    free = S.find_splits(hist, [0], sums, [0], [3], S.SplitParams(min_samples_leaf=1, min_child_weight=0.0))
    assert int(free.bin[0]) == 0  # isolating the strong row is best
    by_count = S.find_splits(hist, [0], sums, [0], [3], S.SplitParams(min_samples_leaf=2, min_child_weight=0.0))
    assert int(by_count.bin[0]) == 1
    by_weight = S.find_splits(hist, [0], sums, [0], [3], S.SplitParams(min_samples_leaf=1, min_child_weight=0.5))
    assert int(by_weight.bin[0]) == 1
    none = S.find_splits(hist, [0], sums, [0], [3], S.SplitParams(min_samples_leaf=3))
    assert int(none.feature[0]) == -1 and float(none.gain[0]) == -np.inf


def test_missing_values_go_to_the_side_they_resemble():
    # values in bin 0 have negative gradients, bin 1 positive; the missing rows look like bin 1
    rows = [(0, -1.0, 1.0)] * 3 + [(1, 1.0, 1.0)] * 3
    hist = _hand_hist(rows, missing=[(1.0, 1.0)] * 3)
    out = S.find_splits(hist, [0], [[3.0, 9.0, 9.0]], [0], [2], S.SplitParams(min_samples_leaf=1))
    assert int(out.bin[0]) == 0 and int(out.missing_left[0]) == 0
    hist = _hand_hist(rows, missing=[(-1.0, 1.0)] * 3)
    out = S.find_splits(hist, [0], [[-3.0, 9.0, 9.0]], [0], [2], S.SplitParams(min_samples_leaf=1))
    assert int(out.bin[0]) == 0 and int(out.missing_left[0]) == 1
    assert out.left[0].tolist() == [-6.0, 6.0, 6.0]


def test_a_split_can_separate_the_missing_rows_from_all_values():
    hist = _hand_hist([(0, 1.0, 1.0)] * 4 + [(1, 1.0, 1.0)] * 4, missing=[(-2.0, 1.0)] * 4)
    out = S.find_splits(hist, [0], [[0.0, 12.0, 12.0]], [0], [2], S.SplitParams(min_samples_leaf=1))
    assert int(out.bin[0]) == 1 and int(out.missing_left[0]) == 0  # every value left, missing right


def test_without_missing_rows_nan_goes_to_the_larger_child():
    hist = _hand_hist([(0, -1.0, 1.0)] * 2 + [(1, 1.0, 1.0)] * 5)
    out = S.find_splits(hist, [0], [[3.0, 7.0, 7.0]], [0], [2], S.SplitParams(min_samples_leaf=1))
    assert int(out.left[0][2]) == 2 and int(out.missing_left[0]) == 0


# ---------------------------------------------------------------------------------- partition
def test_partition_cpu_equals_reference_and_is_stable(data):
    rows, starts, counts, _ = _nodes(data["rng"], 3000)
    bins_t = np.ascontiguousarray(data["bins"].T)
    feat, sbin, ml = np.array([0, 2, 4, 1]), np.array([10, 1, 3, 30]), np.array([1, 0, 1, 0], np.uint8)
    ref, got = np.full_like(rows, -1), np.full_like(rows, -1)
    lr = P.partition_rows_reference(bins_t, rows, ref, starts, counts, feat, sbin, ml)
    lc = P.partition_rows_cpu(bins_t, rows, got, starts, counts, feat, sbin, ml, block=64)
    np.testing.assert_array_equal(lc, lr)
    np.testing.assert_array_equal(got, ref)
    for k in range(4):
        s, c, nl = starts[k], counts[k], lc[k]
        assert np.all(np.diff(got[s : s + nl]) > 0) and np.all(np.diff(got[s + nl : s + c]) > 0)
        assert set(got[s : s + c]) == set(rows[s : s + c])
        b = data["bins"][got[s : s + nl], feat[k]]
        assert np.all((b <= sbin[k]) | ((b == 255) & (ml[k] == 1)))


# ---------------------------------------------------------------------------------- prediction
def _forest(rng, n_features, n_trees=5):
    """Random complete depth-3 trees with some missing-left flags and an all-values-left split."""
    offsets, parts = [], {k: [] for k in ("feature", "threshold", "split_bin", "missing_left", "left", "right", "value")}
    for t in range(n_trees):
        offsets.append(t * 15)
        for i in range(15):
            inner = i < 7
            parts["feature"].append(int(rng.integers(n_features)) if inner else -1)
            parts["split_bin"].append(int(rng.integers(0, 20)))
            parts["missing_left"].append(int(rng.integers(2)))
            parts["left"].append(2 * i + 1 if inner else 0)
            parts["right"].append(2 * i + 2 if inner else 0)
            parts["value"].append(0.0 if inner else float(rng.normal()))
            parts["threshold"].append(0.0)
    return offsets, parts


def test_predictions_from_bins_and_from_values_agree(data):
    rng = data["rng"]
    x, e, nb = data["x"][:, :5], data["edges"][:5], data["n_bins"][:5]
    offsets, parts = _forest(rng, 5)
    sb = np.minimum(np.asarray(parts["split_bin"]), nb[np.maximum(parts["feature"], 0)] - 1)
    f = np.maximum(np.asarray(parts["feature"]), 0)
    thr = np.where(sb >= nb[f] - 1, np.inf, e[f, np.minimum(sb, B.EDGE_SLOTS - 1)]).astype(np.float32)
    forest = PR.Forest(
        np.asarray(offsets, np.int64), np.asarray(parts["feature"], np.int32), thr, sb.astype(np.int32),
        np.asarray(parts["missing_left"], np.uint8), np.asarray(parts["left"], np.int32), np.asarray(parts["right"], np.int32),
        np.asarray(parts["value"]),
    )
    bins = B.apply_bins_cpu(x, e, nb)
    ref = PR.predict_raw_reference(x, forest, np.zeros(len(x)))
    np.testing.assert_allclose(PR.predict_raw_cpu(x, forest, np.zeros(len(x))), ref, rtol=1e-12)
    np.testing.assert_allclose(PR.predict_binned_cpu(bins, forest, np.zeros(len(x))), ref, rtol=1e-12)
    np.testing.assert_allclose(PR.predict_binned_reference(bins, forest, np.zeros(len(x))), ref, rtol=1e-12)
    np.testing.assert_allclose(PR.predict_raw_cpu(x.astype(np.float64), forest, np.zeros(len(x))), ref, rtol=1e-12)


def test_leaf_values_are_added_to_their_rows(data):
    rows = data["rng"].permutation(3000).astype(np.int32)
    starts, counts, values = [0, 1000, 1200], [1000, 200, 1800], [0.5, -1.0, 2.0]
    ref = PR.add_leaf_values_reference(np.zeros(3000), rows, starts, counts, values)
    got = PR.add_leaf_values_cpu(np.zeros(3000), rows, starts, counts, values)
    np.testing.assert_array_equal(got, ref)
    assert got[rows[1100]] == -1.0
