"""Drift statistics computed from binned counts: pure NumPy functions on small arrays.

Every function takes the reference and current histograms over the same bins (or categories) and
returns plain floats. They are the definitions the tests check against scipy.stats.

Binned Kolmogorov-Smirnov and how it bounds the exact statistic
---------------------------------------------------------------
Let ``F`` and ``G`` be the empirical CDFs of the reference and current samples and
``D = sup_x |F(x) - G(x)|`` the exact two-sample KS statistic. Bin ``k`` is ``[e_k, e_{k+1})``
(the first bin also holds everything below ``e_1``, the last everything from ``e_{nb-1}`` up), with
proportions ``p_k`` and ``q_k`` and cumulative sums ``P_k = p_0 + ... + p_k``, ``Q_k`` likewise
(``P_{-1} = Q_{-1} = 0``, ``P_{nb-1} = Q_{nb-1} = 1``). ``P_k = F(e_{k+1}^-)`` is the CDF just
below the next edge.

* Lower bound: ``D_binned = max_k |P_k - Q_k|`` is ``|F - G|`` evaluated at left limits at the
  interior edges, and a supremum over all ``x`` is at least its value at any left limit, so
  ``D_binned <= D``.
* Upper bound: for ``x`` in bin ``k``, ``P_{k-1} <= F(x) <= P_k`` and ``Q_{k-1} <= G(x) <= Q_k``, so
  ``P_{k-1} - Q_k <= F(x) - G(x) <= P_k - Q_{k-1}``. Hence
  ``D <= D_upper = max_k max(P_k - Q_{k-1}, Q_k - P_{k-1})``, and since
  ``P_k - Q_{k-1} = (P_{k-1} - Q_{k-1}) + p_k``, ``D_upper <= D_binned + max_k max(p_k, q_k)``.

So ``D_binned <= D <= D_upper <= D_binned + (largest bin mass of either sample)``; with ten quantile
bins the gap is at most about 0.1 plus the drift itself. When every bin holds a single distinct
value of the pooled data (discrete data with edges between the values) both ECDFs are constant
between edges and ``D_binned = D``.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "chi2_two_sample",
    "correlation_from_moments",
    "jensen_shannon",
    "ks_binned",
    "ks_exact",
    "psi",
    "wasserstein_binned",
]


def _props(counts: np.ndarray) -> np.ndarray | None:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        return None
    return c / total


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray, epsilon: float = 1e-4) -> float:
    """Population stability index ``sum((q - p) * ln(q / p))`` with proportions floored at ``epsilon``.

    NaN when either histogram is empty.
    """
    p, q = _props(ref_counts), _props(cur_counts)
    if p is None or q is None:
        return math.nan
    p = np.maximum(p, epsilon)
    q = np.maximum(q, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Jensen-Shannon distance in base 2 (the square root of the divergence), in ``[0, 1]``.

    Equals ``scipy.spatial.distance.jensenshannon(p, q, base=2)``; NaN when either histogram is empty.
    """
    p, q = _props(ref_counts), _props(cur_counts)
    if p is None or q is None:
        return math.nan
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return math.sqrt(max(0.5 * kl(p) + 0.5 * kl(q), 0.0))


def wasserstein_binned(ref_counts: np.ndarray, cur_counts: np.ndarray, centres: np.ndarray) -> float:
    """First Wasserstein distance between the two histograms placed at the bin centres.

    Equals ``scipy.stats.wasserstein_distance(centres, centres, ref_counts, cur_counts)``.
    """
    p, q = _props(ref_counts), _props(cur_counts)
    if p is None or q is None:
        return math.nan
    c = np.asarray(centres, dtype=np.float64)
    if c.size < 2:
        return 0.0
    cdf_gap = np.abs(np.cumsum(p) - np.cumsum(q))[:-1]
    return float(np.sum(cdf_gap * np.diff(c)))


def ks_binned(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """``(D_binned, D_upper)``: the exact two-sample KS statistic lies between them (module doc)."""
    p, q = _props(ref_counts), _props(cur_counts)
    if p is None or q is None:
        return math.nan, math.nan
    cp, cq = np.cumsum(p), np.cumsum(q)
    lower = float(np.max(np.abs(cp - cq)))
    prev_p = np.concatenate(([0.0], cp[:-1]))
    prev_q = np.concatenate(([0.0], cq[:-1]))
    upper = float(max(np.max(cp - prev_q), np.max(cq - prev_p)))
    return lower, min(max(upper, lower), 1.0)


def ks_exact(ref_values: np.ndarray, cur_values: np.ndarray) -> float:
    """Exact two-sample KS statistic (``scipy.stats.ks_2samp(...).statistic``) of non-missing values."""
    a = np.sort(np.asarray(ref_values, dtype=np.float64))
    b = np.sort(np.asarray(cur_values, dtype=np.float64))
    if a.size == 0 or b.size == 0:
        return math.nan
    pooled = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, pooled, side="right") / a.size
    cdf_b = np.searchsorted(b, pooled, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def chi2_two_sample(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float, int]:
    """Pearson chi-square test of homogeneity on the 2 x K table (reference, current) x categories.

    Categories absent from both samples are dropped. Equals
    ``scipy.stats.chi2_contingency(table, correction=False)``: both samples are random, unlike the
    one-sample goodness-of-fit test that treats reference frequencies as exact. Returns
    ``(statistic, p_value, dof)``; with fewer than two categories the statistic is 0 and p is 1.
    """
    from scipy.stats import chi2

    table = np.vstack([np.asarray(ref_counts, np.float64), np.asarray(cur_counts, np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] < 2 or (rows <= 0).any():
        return 0.0, 1.0, max(table.shape[1] - 1, 0)
    expected = np.outer(rows, table.sum(axis=0)) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return stat, float(chi2.sf(stat, dof)), dof


def correlation_from_moments(
    count: np.ndarray,
    s: np.ndarray,
    q: np.ndarray,
    p: np.ndarray,
    sm: np.ndarray,
    qm: np.ndarray,
    nm: np.ndarray,
) -> np.ndarray:
    """Pearson correlations over pairwise-complete rows (as ``pandas.DataFrame.corr``) from sums.

    ``count``, ``s``, ``q``: per column, non-missing count, sum and sum of squares of the shifted
    values; ``p[a, b]``: sum of products over rows where both are present; ``sm[a, b]``, ``qm[a, b]``,
    ``nm[a, b]``: sum, sum of squares and count of column ``a`` over rows where ``a`` is present and
    ``b`` missing. NaN where a pair has fewer than two rows or no variance.
    """
    count = np.asarray(count, np.float64)
    n = count[:, None] - nm
    sa = s[:, None] - sm
    qa = q[:, None] - qm
    sb = sa.T
    qb = qa.T
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = n * p - sa * sb
        va = n * qa - sa * sa
        vb = n * qb - sb * sb
        corr = cov / np.sqrt(va * vb)
    corr[(n < 2) | (va <= 0) | (vb <= 0)] = np.nan
    corr = np.clip(corr, -1.0, 1.0)
    idx = np.arange(corr.shape[0])
    diag = corr[idx, idx]
    corr[idx, idx] = np.where(np.isnan(diag), np.nan, 1.0)
    return corr
