"""The cost-optimal decision threshold equals a brute-force search over every cut."""
import numpy as np
import pytest

from engine.evaluate.metrics import expected_cost
from engine.evaluate.threshold import choose_threshold, cost_curve


def _brute_force(y, p, cost):
    cuts = np.r_[np.unique(p), np.inf]
    return min(expected_cost(y, p, t, cost) for t in cuts)


@pytest.mark.parametrize("cost", [
    {"fp": 1.0, "fn": 1.0},
    {"fp": 1.0, "fn": 5.0},
    {"fp": 10.0, "fn": 1.0},
    {"fp": 2.0, "fn": 3.0, "tp": -1.0, "tn": 0.5},
])
@pytest.mark.parametrize("seed", [0, 1])
def test_threshold_minimises_expected_cost_like_brute_force(cost, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + 0.7 * rng.random(300), 0, 1)
    p[:60] = np.round(p[:60], 1)  # ties
    choice = choose_threshold(y, p, cost)
    best = _brute_force(y, p, cost)
    assert choice.expected_cost == pytest.approx(best, abs=1e-12)
    assert expected_cost(y, p, choice.threshold, cost) == pytest.approx(best, abs=1e-12)


def test_costly_misses_lower_the_threshold():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + 0.7 * rng.random(500), 0, 1)
    lenient = choose_threshold(y, p, {"fp": 1.0, "fn": 1.0}).threshold
    cautious = choose_threshold(y, p, {"fp": 1.0, "fn": 20.0}).threshold
    assert cautious < lenient


def test_threshold_can_predict_nothing_positive():
    y = np.array([0, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.7, 0.6])
    choice = choose_threshold(y, p, {"fp": 1.0, "fn": 1.0})
    assert choice.threshold > 0.9 and choice.expected_cost == pytest.approx(0.25)


def test_threshold_lies_between_neighbouring_scores():
    y = np.array([0, 1, 0, 1])
    p = np.array([0.2, 0.6, 0.4, 0.8])
    choice = choose_threshold(y, p, {"fp": 1.0, "fn": 1.0})
    assert choice.threshold == pytest.approx(0.5) and choice.expected_cost == 0.0


def test_cost_curve_lists_every_cut_once():
    thresholds, total = cost_curve(np.array([0, 1, 1]), np.array([0.3, 0.3, 0.9]), {"fp": 1, "fn": 1})
    assert thresholds.size == total.size == 3  # none, {0.9}, {0.9, 0.3, 0.3}
    assert np.all(np.diff(thresholds) < 0)
