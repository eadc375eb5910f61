"""Drift statistics from binned counts, checked against scipy.stats and pandas on random data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from engine.monitor.metrics import (
    chi2_two_sample,
    correlation_from_moments,
    jensen_shannon,
    ks_binned,
    ks_exact,
    psi,
    wasserstein_binned,
)
from engine.monitor.stats import cross_moments
from kernels.binned_stats import binned_stats_cpu


@pytest.fixture
def counts():
    rng = np.random.default_rng(0)
    return rng.integers(0, 500, 12), rng.integers(0, 500, 12)


def test_psi_matches_its_definition(counts):
    p, q = counts[0] / counts[0].sum(), counts[1] / counts[1].sum()
    assert psi(*counts) == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-12)


def test_psi_floors_empty_bins_at_epsilon():
    assert psi(np.array([10, 0]), np.array([5, 5]), epsilon=1e-4) == pytest.approx(
        (0.5 - 1.0) * np.log(0.5 / 1.0) + (0.5 - 1e-4) * np.log(0.5 / 1e-4)
    )


def test_jensen_shannon_matches_scipy(counts):
    assert jensen_shannon(*counts) == pytest.approx(jensenshannon(counts[0], counts[1], base=2), rel=1e-10)


def test_jensen_shannon_with_disjoint_support_is_one():
    assert jensen_shannon(np.array([5, 0]), np.array([0, 7])) == pytest.approx(1.0)


def test_wasserstein_matches_scipy_on_bin_centres(counts):
    centres = np.cumsum(np.random.default_rng(1).uniform(0.1, 2.0, 12))
    expected = stats.wasserstein_distance(centres, centres, counts[0], counts[1])
    assert wasserstein_binned(counts[0], counts[1], centres) == pytest.approx(expected, rel=1e-10)


def test_chi2_is_the_two_sample_contingency_test(counts):
    ref, cur = counts[0].copy(), counts[1].copy()
    ref[3] = cur[3] = 0  # a category absent from both is dropped
    stat, p, dof = chi2_two_sample(ref, cur)
    table = np.vstack([ref, cur])[:, [j for j in range(12) if j != 3]]
    res = stats.chi2_contingency(table, correction=False)
    assert (stat, p, dof) == (pytest.approx(res.statistic, rel=1e-10), pytest.approx(res.pvalue, rel=1e-8), res.dof)


def test_binned_ks_equals_exact_when_bins_separate_every_value():
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 15, 3000), rng.binomial(14, 0.45, 2500)
    edges = np.arange(-0.5, 15.0, 1.0)
    ca = np.histogram(a, edges)[0]
    cb = np.histogram(b, edges)[0]
    lower, upper = ks_binned(ca, cb)
    assert lower == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert upper >= lower


def test_binned_ks_bounds_the_exact_statistic_on_continuous_data():
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.05, 0.3):
        a, b = rng.normal(size=4000), rng.normal(shift, 1.1, size=3000)
        edges = np.quantile(a, np.linspace(0, 1, 11))
        x = np.full((4000, 2), np.nan)
        x[:, 0] = a
        x[:3000, 1] = b
        st = binned_stats_cpu(x, np.vstack([edges, edges]))
        lower, upper = ks_binned(st.counts[0], st.counts[1])
        exact = stats.ks_2samp(a, b).statistic
        assert lower <= exact + 1e-12 <= upper + 2e-12
        largest_bin = max((st.counts[0] / 4000).max(), (st.counts[1] / 3000).max())
        assert upper <= lower + largest_bin + 1e-12


def test_exact_ks_matches_scipy():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=1000), rng.standard_t(3, size=777)
    assert ks_exact(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_empty_histogram_gives_nan():
    assert np.isnan(psi(np.zeros(3), np.ones(3))) and np.isnan(jensen_shannon(np.ones(3), np.zeros(3)))


def test_pairwise_complete_correlation_matches_pandas():
    rng = np.random.default_rng(5)
    n = 3000
    base = rng.normal(size=n)
    x = np.column_stack([base + rng.normal(size=n) * s for s in (0.3, 1.0, 3.0)] + [rng.normal(5, 2, n)])
    x[rng.random((n, 4)) < [0.1, 0.0, 0.2, 0.05]] = np.nan
    shift = np.nanmean(x, axis=0) + 0.3
    edges = np.array([[-50.0, 0.0, 50.0]] * 4)
    half = n // 2
    parts = [binned_stats_cpu(x[s], edges, shift) for s in (slice(0, half), slice(half, n))]
    cms = [cross_moments(x[s], shift, p.missing) for s, p in zip((slice(0, half), slice(half, n)), parts)]
    bs = parts[0].merge(parts[1])
    cm = {k: cms[0][k] + cms[1][k] for k in cms[0]}
    corr = correlation_from_moments(bs.count, bs.sum, bs.sumsq, cm["p"], cm["sm"], cm["qm"], cm["nm"])
    np.testing.assert_allclose(corr, pd.DataFrame(x).corr().to_numpy(), atol=1e-10)


def test_row_twins_equal_the_scalar_functions_row_by_row_and_empty_rows_give_nan():
    from engine.monitor.metrics import (
        chi2_two_sample_rows,
        jensen_shannon_rows,
        ks_binned_rows,
        psi_rows,
        wasserstein_binned_rows,
    )

    rng = np.random.default_rng(9)
    ref = rng.integers(0, 300, (6, 9))
    cur = rng.integers(0, 300, (6, 9))
    ref[:, 7:] = cur[:, 7:] = 0  # padding past a shorter row's bins
    cur[2] = 0  # an empty histogram
    ref[4, :3] = 0
    centres = np.cumsum(rng.uniform(0.1, 1.0, (6, 9)), axis=1)
    centres[:, 7:] = np.nan
    lo, hi = ks_binned_rows(ref, cur)
    stat, pval, dof = chi2_two_sample_rows(ref, cur)
    for j in range(6):
        p, q = ref[j, :7], cur[j, :7]
        got = [psi_rows(ref, cur)[j], jensen_shannon_rows(ref, cur)[j], wasserstein_binned_rows(ref, cur, centres)[j], lo[j], hi[j]]
        want = [psi(p, q), jensen_shannon(p, q), wasserstein_binned(p, q, centres[j, :7]), *ks_binned(p, q)]
        assert got == pytest.approx(want, rel=1e-12, nan_ok=True)
        assert (stat[j], pval[j], dof[j]) == pytest.approx(chi2_two_sample(p, q), rel=1e-12)
    assert np.isnan(psi_rows(ref, cur)[2]) and np.isnan(jensen_shannon_rows(ref, cur)[2]) and np.isnan(lo[2])
    assert (stat[2], pval[2]) == (0.0, 1.0)
