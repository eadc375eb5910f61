"""Drift statistics computed from binned counts: pure NumPy functions on small arrays.

Every function takes the reference and current histograms over the same bins (or categories) and
returns plain floats. They are the definitions the tests check against scipy.stats. Each ``*_rows``
twin computes the same statistic for every row of two ``(features, bins)`` count matrices at once
(zero-padded bins change nothing), which is how a report covers all features in one call; the
scalar function is its one-row case.

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
    "chi2_two_sample_rows",
    "correlation_from_moments",
    "jensen_shannon",
    "jensen_shannon_rows",
    "ks_binned",
    "ks_binned_rows",
    "ks_exact",
    "psi",
    "psi_rows",
    "wasserstein_binned",
    "wasserstein_binned_rows",
]


def _props_rows(counts: np.ndarray) -> np.ndarray:
    """Row-wise proportions of a ``(rows, bins)`` count matrix; a row that sums to 0 is NaN."""
    c = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    total = c.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, c / np.where(total > 0, total, 1.0), np.nan)


def _one(value: np.ndarray) -> float:
    return float(value[0])


def psi_rows(ref_counts: np.ndarray, cur_counts: np.ndarray, epsilon: float = 1e-4) -> np.ndarray:
    """:func:`psi` of each row pair of two ``(rows, bins)`` count matrices (zero-padded bins add 0)."""
    p, q = _props_rows(ref_counts), _props_rows(cur_counts)
    p = np.maximum(p, epsilon)  # NaN rows stay NaN
    q = np.maximum(q, epsilon)
    return np.sum((q - p) * np.log(q / p), axis=1)


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray, epsilon: float = 1e-4) -> float:
    """Population stability index ``sum((q - p) * ln(q / p))`` with proportions floored at ``epsilon``.

    NaN when either histogram is empty.
    """
    return _one(psi_rows(ref_counts, cur_counts, epsilon))


def jensen_shannon_rows(ref_counts: np.ndarray, cur_counts: np.ndarray) -> np.ndarray:
    """:func:`jensen_shannon` of each row pair of two ``(rows, bins)`` count matrices."""
    p, q = _props_rows(ref_counts), _props_rows(cur_counts)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> np.ndarray:
        nz = a > 0  # False for NaN rows, which the NaN check below restores
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sum(np.where(nz, a * np.log2(np.where(nz, a, 1.0) / np.where(nz, m, 1.0)), 0.0), axis=1)

    out = np.sqrt(np.maximum(0.5 * kl(p) + 0.5 * kl(q), 0.0))
    out[np.isnan(p[:, 0]) | np.isnan(q[:, 0])] = np.nan
    return out


def jensen_shannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Jensen-Shannon distance in base 2 (the square root of the divergence), in ``[0, 1]``.

    Equals ``scipy.spatial.distance.jensenshannon(p, q, base=2)``; NaN when either histogram is empty.
    """
    return _one(jensen_shannon_rows(ref_counts, cur_counts))


def wasserstein_binned_rows(ref_counts: np.ndarray, cur_counts: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """:func:`wasserstein_binned` of each row pair; ``centres`` ``(rows, bins)`` is NaN past a row's bins."""
    p, q = _props_rows(ref_counts), _props_rows(cur_counts)
    c = np.atleast_2d(np.asarray(centres, dtype=np.float64))
    gap = np.abs(np.cumsum(p, axis=1) - np.cumsum(q, axis=1))[:, :-1]
    step = np.nan_to_num(np.diff(c, axis=1), nan=0.0)  # 0 past a row's last centre
    out = np.sum(gap * step, axis=1)
    out[np.isnan(p[:, 0]) | np.isnan(q[:, 0])] = np.nan
    return out


def wasserstein_binned(ref_counts: np.ndarray, cur_counts: np.ndarray, centres: np.ndarray) -> float:
    """First Wasserstein distance between the two histograms placed at the bin centres.

    Equals ``scipy.stats.wasserstein_distance(centres, centres, ref_counts, cur_counts)``.
    """
    return _one(wasserstein_binned_rows(ref_counts, cur_counts, centres))


def ks_binned_rows(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ks_binned` of each row pair: ``(lower, upper)``, two arrays."""
    p, q = _props_rows(ref_counts), _props_rows(cur_counts)
    cp, cq = np.cumsum(p, axis=1), np.cumsum(q, axis=1)
    lower = np.max(np.abs(cp - cq), axis=1)
    zero = np.zeros((cp.shape[0], 1))
    prev_p = np.concatenate((zero, cp[:, :-1]), axis=1)
    prev_q = np.concatenate((zero, cq[:, :-1]), axis=1)
    upper = np.maximum(np.max(cp - prev_q, axis=1), np.max(cq - prev_p, axis=1))
    return lower, np.minimum(np.maximum(upper, lower), 1.0)


def ks_binned(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """``(D_binned, D_upper)``: the exact two-sample KS statistic lies between them (module doc)."""
    lower, upper = ks_binned_rows(ref_counts, cur_counts)
    return _one(lower), _one(upper)


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


def chi2_two_sample_rows(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`chi2_two_sample` of each row pair of two ``(rows, categories)`` count matrices.

    Returns ``(statistic, p_value, dof)`` arrays; zero-padded categories are absent from both samples
    and dropped like any other.
    """
    from scipy.special import chdtrc  # the chi-square survival function, ``scipy.stats.chi2.sf``

    r = np.atleast_2d(np.asarray(ref_counts, np.float64))
    c = np.atleast_2d(np.asarray(cur_counts, np.float64))
    col = r + c
    present = col > 0
    dof = present.sum(axis=1) - 1
    nr, nc = r.sum(axis=1), c.sum(axis=1)
    ok = (dof >= 1) & (nr > 0) & (nc > 0)
    total = np.where(ok, nr + nc, 1.0)[:, None]
    er = np.where(present, nr[:, None] * col / total, 1.0)
    ec = np.where(present, nc[:, None] * col / total, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):  # rows with an empty sample are not ``ok``
        terms = np.where(present, (r - er) ** 2 / er + (c - ec) ** 2 / ec, 0.0)
    stat = np.where(ok, terms.sum(axis=1), 0.0)
    pval = np.where(ok, chdtrc(np.maximum(dof, 1), stat), 1.0)
    return stat, pval, np.maximum(dof, 0)


def chi2_two_sample(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float, int]:
    """Pearson chi-square test of homogeneity on the 2 x K table (reference, current) x categories.

    Categories absent from both samples are dropped. Equals
    ``scipy.stats.chi2_contingency(table, correction=False)``: both samples are random, unlike the
    one-sample goodness-of-fit test that treats reference frequencies as exact. Returns
    ``(statistic, p_value, dof)``; with fewer than two categories the statistic is 0 and p is 1.
    """
    stat, pval, dof = chi2_two_sample_rows(ref_counts, cur_counts)
    return _one(stat), _one(pval), int(dof[0])


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
