"""Evaluation metrics agree with scikit-learn's definitions."""
import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from engine.evaluate import metrics as M


@pytest.fixture(scope="module")
def binary():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 800)
    p = np.clip(0.35 * y + 0.65 * rng.random(800), 0, 1)
    p[:100] = np.round(p[:100], 1)  # ties
    return y, p


def test_roc_auc_matches_sklearn_with_ties(binary):
    y, p = binary
    assert M.roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)


def test_pr_auc_is_average_precision(binary):
    y, p = binary
    assert M.pr_auc(y, p) == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)


def test_log_loss_and_brier_match_sklearn(binary):
    y, p = binary
    assert M.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), rel=1e-12)
    assert M.brier(y, p) == pytest.approx(skm.brier_score_loss(y, p), rel=1e-12)


def test_log_loss_clips_certain_mistakes():
    assert math.isfinite(M.log_loss([1, 0], [0.0, 1.0]))


@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.73])
def test_thresholded_metrics_match_sklearn(binary, threshold):
    y, p = binary
    hat = (p >= threshold).astype(int)
    got = M.at_threshold(y, p, threshold)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, hat))
    assert got["precision"] == pytest.approx(skm.precision_score(y, hat, zero_division=0))
    assert got["recall"] == pytest.approx(skm.recall_score(y, hat))
    assert got["f1"] == pytest.approx(skm.f1_score(y, hat))
    tn, fp, fn, tp = skm.confusion_matrix(y, hat).ravel()
    assert got["confusion"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}


def test_precision_is_zero_when_nothing_is_predicted_positive(binary):
    y, p = binary
    got = M.at_threshold(y, p, 1.5)
    assert got["precision"] == 0.0 and got["f1"] == 0.0 and got["recall"] == 0.0


def test_calibration_bins_match_sklearn_and_ece_by_hand(binary):
    y, p = binary
    cal = M.calibration(y, p, n_bins=10)
    full = [b for b in cal["bins"] if b["count"]]
    frac, mean = calibration_curve(y, p, n_bins=10, strategy="uniform")
    np.testing.assert_allclose([b["fraction_positive"] for b in full], frac, atol=1e-12)
    np.testing.assert_allclose([b["mean_predicted"] for b in full], mean, atol=1e-12)
    ece = sum(b["count"] * abs(b["mean_predicted"] - b["fraction_positive"]) for b in full) / len(y)
    assert cal["ece"] == pytest.approx(ece)
    assert sum(b["count"] for b in cal["bins"]) == len(y)


def test_perfectly_calibrated_scores_have_small_ece():
    rng = np.random.default_rng(1)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(int)
    assert M.calibration(y, p)["ece"] < 0.01


def test_auc_is_nan_with_one_class():
    assert math.isnan(M.roc_auc([1, 1, 1], [0.2, 0.5, 0.9]))


def test_non_binary_target_is_an_error():
    with pytest.raises(ValueError, match="0/1"):
        M.roc_auc([0, 2, 1], [0.1, 0.2, 0.3])


def test_binary_metrics_record_has_every_kpi_metric(binary):
    y, p = binary
    rec = M.binary_metrics(y, p, 0.5, {"fp": 1.0, "fn": 5.0})
    assert set(M.BINARY_METRICS) <= set(rec)
    assert rec["expected_cost"] == pytest.approx(M.expected_cost(y, p, 0.5, {"fp": 1.0, "fn": 5.0}))


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    y = rng.normal(size=500)
    pred = y + rng.normal(scale=0.3, size=500)
    got = M.regression_metrics(y, pred)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))


# ---- fairness ----------------------------------------------------------------------------------
def test_group_rates_and_gaps_by_hand():
    from engine.evaluate.fairness import group_labels, group_table

    y = np.array([1, 0, 1, 0, 1, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.6, 0.4, 0.3])
    g = group_labels(np.array(["a", "a", "a", "a", "b", "b", "b", "b"], dtype=object), None)
    t = group_table(y, p, g, threshold=0.5, min_group=1)
    a, b = t["groups"]
    assert (a["selection_rate"], a["tpr"], a["fpr"]) == (0.5, 0.5, 0.5)
    assert (b["selection_rate"], b["tpr"], b["fpr"]) == (0.5, 1.0, 1 / 3)
    assert t["demographic_parity_diff"] == 0.0
    assert t["equalized_odds_diff"] == pytest.approx(0.5)
    assert a["auc"] == pytest.approx(skm.roc_auc_score(y[:4], p[:4]))


def test_small_groups_are_reported_but_not_compared():
    from engine.evaluate.fairness import group_labels, group_table

    y = np.r_[np.zeros(40), np.ones(40), [1.0, 1.0]]
    p = np.r_[np.full(40, 0.2), np.full(40, 0.8), [0.9, 0.9]]
    g = group_labels(np.array(["a"] * 80 + ["b"] * 2, dtype=object), None)
    t = group_table(y, p, g, threshold=0.5, min_group=30)
    assert [r["compared"] for r in t["groups"]] == [True, False]
    assert t["demographic_parity_diff"] is None


def test_numeric_attribute_is_cut_into_quantile_bands_and_missing_kept_apart():
    from engine.evaluate.fairness import MISSING, band_edges, group_labels

    ages = np.arange(18, 90, dtype=np.float64)
    edges = band_edges(ages, bands=4)
    assert edges[0] == 18 and edges[-1] == 89 and len(edges) == 5
    labels = group_labels(np.array([18.0, 40.0, 89.0, np.nan, 120.0]), edges)
    assert labels[0].startswith("[18,") and labels[2].endswith("89]") and labels[3] == MISSING
    assert labels[4] == "> 89"
    assert band_edges(np.array([1, 2, 3, 1, 2]), bands=4) is None  # few levels: used as they are
