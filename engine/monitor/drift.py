"""Compare new data with a reference sketch: every feature's drift statistics from one pass."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.errors import DataError
from engine.monitor.config import CategoricalMethod, MonitorConfig, NumericMethod
from engine.monitor.frames import iter_tables
from engine.monitor.metrics import (
    chi2_two_sample_rows,
    correlation_from_moments,
    jensen_shannon_rows,
    ks_binned_rows,
    ks_exact,
    psi_rows,
    wasserstein_binned_rows,
)
from engine.monitor.report import CategoricalDrift, CorrelationShift, DriftReport, NumericDrift
from engine.monitor.sketch import ReferenceSketch, _std
from engine.monitor.stats import PartialStats, collect

__all__ = ["compare"]


def compare(
    sketch: ReferenceSketch,
    data: Any,
    config: MonitorConfig | None = None,
    exact_ks: bool = False,
    reference: Any = None,
) -> DriftReport:
    """Drift of ``data`` against a reference sketch, all features in one pass of the fused kernels.

    Parameters
    ----------
    sketch : ReferenceSketch
        From :func:`engine.monitor.fit_reference` or :meth:`ReferenceSketch.load`.
    data : DataFrame, mapping of columns, 2-D array, iterable of those, or Dask DataFrame
        The current data, read where it lives (NumPy / pandas on the CPU, CuPy / cuDF on the GPU).
        An iterable is read one chunk at a time and a Dask DataFrame one partition at a time, so the
        data never has to fit in memory; a 2-D array holds the sketch's numeric features in order.
    config : MonitorConfig, optional
        Thresholds and methods for the verdicts (defaults: conf/monitor/default.yaml).
    exact_ks : bool
        Also compute the exact two-sample KS statistic. It needs every non-missing value of both
        samples in host memory, and the reference data itself (``reference``).
    reference : same kinds as ``data``, optional
        The reference data, for ``exact_ks``.

    Returns
    -------
    DriftReport
        Per numeric feature: PSI, Jensen-Shannon distance (base 2), binned Wasserstein distance
        (raw and over the reference std), binned KS statistic with its upper bound (the exact value
        lies between, see :mod:`engine.monitor.metrics`), mean and std shift, missing-rate change.
        Per categorical feature: PSI, Jensen-Shannon, the two-sample chi-square test, new and
        vanished categories, missing-rate change. The correlation shift and the verdicts.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from engine.monitor import fit_reference
    >>> rng = np.random.default_rng(0)
    >>> sk = fit_reference(pd.DataFrame({"a": rng.normal(size=5000)}))
    >>> rep = compare(sk, pd.DataFrame({"a": rng.normal(1.0, 1.0, size=5000)}))
    >>> rep.numeric["a"].drifted, rep.drifted
    (True, True)
    """
    cfg = config or MonitorConfig()
    if exact_ks and reference is None:
        raise DataError("exact_ks=True needs the reference data: compare(sketch, data, exact_ks=True, reference=...)")
    spec = sketch.spec(keep_values=exact_ks)
    stats = collect(data, spec, cfg.chunk_rows)
    ref_values = _reference_values(reference, sketch, cfg) if exact_ks else None
    return build_report(sketch, stats, cfg, ref_values)


def _reference_values(reference: Any, sketch: ReferenceSketch, cfg: MonitorConfig) -> list[np.ndarray]:
    from engine.backend import to_numpy

    parts: list[list[np.ndarray]] = [[] for _ in sketch.numeric]
    for table in iter_tables(reference, sketch.numeric):
        table.require(sketch.numeric, "numeric")
        for a, b in table.slices(cfg.chunk_rows):
            x = to_numpy(table.numeric(sketch.numeric, a, b))
            for j in range(x.shape[1]):
                v = x[:, j].astype(np.float64)
                parts[j].append(v[~np.isnan(v)])
    return [np.concatenate(p) if p else np.zeros(0) for p in parts]


def _enum_value(v: Any) -> str:
    return str(getattr(v, "value", v))


def build_report(
    sketch: ReferenceSketch, stats: PartialStats, cfg: MonitorConfig, ref_values: list[np.ndarray] | None = None
) -> DriftReport:
    """Turn the merged statistics of the current data into a :class:`DriftReport`."""
    n_cur = int(stats.n_rows)
    num_method = _enum_value(cfg.numeric_method)
    cat_method = _enum_value(cfg.categorical_method)
    if num_method not in {m.value for m in NumericMethod}:
        raise DataError(f"monitor.numeric_method: expected one of {[m.value for m in NumericMethod]}, got {num_method!r}")
    if cat_method not in {m.value for m in CategoricalMethod}:
        raise DataError(f"monitor.categorical_method: expected one of {[m.value for m in CategoricalMethod]}, got {cat_method!r}")

    numeric: dict[str, NumericDrift] = {}
    if sketch.numeric:
        bs = stats.numeric
        cur_count = bs.count.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            cur_mean = sketch.shift + bs.sum / cur_count
        cur_std = _std(cur_count, bs.sum, bs.sumsq)
        ref_mean, ref_std = sketch.mean, sketch.std
        ref_miss = sketch.missing_rate
        cur_miss = bs.missing / n_cur if n_cur else np.full(len(sketch.numeric), np.nan)
        # every feature's binned statistics in one vectorised call each (bins past a feature's own are 0)
        p_all, q_all = sketch.counts, bs.counts[:, : sketch.counts.shape[1]]
        psi_v = psi_rows(p_all, q_all, cfg.psi_epsilon)
        js_v = jensen_shannon_rows(p_all, q_all)
        w_v = wasserstein_binned_rows(p_all, q_all, sketch.centre_matrix())
        ks_lo_v, ks_hi_v = ks_binned_rows(p_all, q_all)
        for j, name in enumerate(sketch.numeric):
            w = float(w_v[j])
            exact = None
            if ref_values is not None and stats.values is not None:
                cur_v = np.concatenate(stats.values[j]) if stats.values[j] else np.zeros(0)
                exact = ks_exact(ref_values[j], cur_v)
            d = NumericDrift(
                feature=name,
                psi=float(psi_v[j]),
                js=float(js_v[j]),
                wasserstein=w,
                wasserstein_norm=_ratio(w, ref_std[j]),
                ks=float(ks_lo_v[j]),
                ks_upper=float(ks_hi_v[j]),
                ks_exact=exact,
                mean_ref=float(ref_mean[j]),
                mean_cur=float(cur_mean[j]),
                mean_shift=_ratio(float(cur_mean[j] - ref_mean[j]), ref_std[j]),
                std_ref=float(ref_std[j]),
                std_cur=float(cur_std[j]),
                std_ratio=_ratio(float(cur_std[j]), ref_std[j]),
                min_cur=float(bs.min[j]) if cur_count[j] else math.nan,
                max_cur=float(bs.max[j]) if cur_count[j] else math.nan,
                missing_ref=float(ref_miss[j]),
                missing_cur=float(cur_miss[j]),
                missing_change=float(cur_miss[j] - ref_miss[j]),
            )
            stat_of = {
                "psi": (d.psi, cfg.psi_threshold),
                "js": (d.js, cfg.js_threshold),
                "ks": (d.ks_exact if d.ks_exact is not None else d.ks, cfg.ks_threshold),
                "wasserstein": (d.wasserstein_norm, cfg.wasserstein_threshold),
            }
            d.method = num_method
            d.statistic, d.threshold = stat_of[num_method]
            _verdict(d, d.statistic > d.threshold, f"{num_method} {d.statistic:.4g} > {d.threshold:g}", cfg)
            numeric[name] = d

    categorical: dict[str, CategoricalDrift] = {}
    cat_rows = []  # per column: (reference counts, current counts, new categories), known ones first
    for j, name in enumerate(sketch.categorical):
        ref_c = np.asarray(sketch.category_counts[name], np.int64)
        cur_known = np.asarray(stats.cat_counts[j], np.int64)
        new = stats.cat_new[j] or {}
        new_sorted = dict(sorted(new.items(), key=lambda kv: (-kv[1], str(kv[0]))))
        cur_new = np.fromiter(new_sorted.values(), np.int64, len(new_sorted))
        cat_rows.append((ref_c, np.concatenate([cur_known, cur_new]), new_sorted))
    if cat_rows:  # all columns' statistics at once, categories zero-padded to the longest column's
        width = max(1, max(len(c) for _, c, _ in cat_rows))
        ref_m = np.zeros((len(cat_rows), width), np.int64)
        cur_m = np.zeros((len(cat_rows), width), np.int64)
        for j, (ref_c, cur_all, _) in enumerate(cat_rows):
            ref_m[j, : len(ref_c)] = ref_c
            cur_m[j, : len(cur_all)] = cur_all
        cat_psi = psi_rows(ref_m, cur_m, cfg.psi_epsilon)
        cat_js = jensen_shannon_rows(ref_m, cur_m)
        chi_stat, chi_p, chi_dof = chi2_two_sample_rows(ref_m, cur_m)
    for j, name in enumerate(sketch.categorical):
        ref_c, cur_all, new_sorted = cat_rows[j]
        cur_known = cur_all[: len(ref_c)]
        ref_n = sketch.n_rows
        ref_miss = sketch.category_missing[name] / ref_n if ref_n else math.nan
        cur_miss = float(stats.cat_missing[j]) / n_cur if n_cur else math.nan
        vanished = [c for c, rc, cc in zip(sketch.categories[name], ref_c, cur_known) if rc > 0 and cc == 0]
        d = CategoricalDrift(
            feature=name,
            psi=float(cat_psi[j]),
            js=float(cat_js[j]),
            chi2=float(chi_stat[j]),
            chi2_pvalue=float(chi_p[j]),
            chi2_dof=int(chi_dof[j]),
            new_categories=new_sorted,
            vanished_categories=vanished,
            n_categories_ref=int((ref_c > 0).sum()),
            n_categories_cur=int((cur_all > 0).sum()),
            missing_ref=float(ref_miss),
            missing_cur=cur_miss,
            missing_change=float(cur_miss - ref_miss),
            method=cat_method,
        )
        if cat_method == "chi2":
            d.statistic, d.threshold = d.chi2_pvalue, cfg.chi2_pvalue
            _verdict(d, d.statistic < d.threshold, f"chi2 p-value {d.statistic:.3g} < {d.threshold:g}", cfg)
        else:
            d.statistic, d.threshold = (d.psi, cfg.psi_threshold) if cat_method == "psi" else (d.js, cfg.js_threshold)
            _verdict(d, d.statistic > d.threshold, f"{cat_method} {d.statistic:.4g} > {d.threshold:g}", cfg)
        categorical[name] = d

    corr = _correlation_shift(sketch, stats, cfg)
    n_features = len(numeric) + len(categorical)
    n_drifted = sum(d.drifted for d in numeric.values()) + sum(d.drifted for d in categorical.values())
    share = n_drifted / n_features if n_features else 0.0
    drifted = (n_features > 0 and share >= cfg.drift_share) or bool(corr is not None and corr.drifted)
    return DriftReport(
        numeric=numeric,
        categorical=categorical,
        correlation=corr,
        n_rows_reference=int(sketch.n_rows),
        n_rows_current=n_cur,
        n_features=n_features,
        n_drifted=int(n_drifted),
        share_drifted=float(share),
        drift_share=float(cfg.drift_share),
        drifted=bool(drifted),
        thresholds={
            "numeric_method": num_method,
            "categorical_method": cat_method,
            "psi": cfg.psi_threshold,
            "js": cfg.js_threshold,
            "ks": cfg.ks_threshold,
            "wasserstein": cfg.wasserstein_threshold,
            "chi2_pvalue": cfg.chi2_pvalue,
            "missing_rate": cfg.missing_rate_threshold,
            "correlation": cfg.correlation_threshold,
        },
    )


def _ratio(a: float, b: float) -> float:
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.nan
    if b == 0:
        return 0.0 if a == 0 else math.copysign(math.inf, a)
    return a / b


def _verdict(d: Any, statistic_drifts: bool, reason: str, cfg: MonitorConfig) -> None:
    reasons = []
    if statistic_drifts:
        reasons.append(reason)
    if not math.isnan(d.missing_change) and abs(d.missing_change) > cfg.missing_rate_threshold:
        reasons.append(f"missing rate {d.missing_ref:.3g} -> {d.missing_cur:.3g} (change > {cfg.missing_rate_threshold:g})")
    d.reasons = reasons
    d.drifted = bool(reasons)


def _correlation_shift(sketch: ReferenceSketch, stats: PartialStats, cfg: MonitorConfig) -> CorrelationShift | None:
    if len(sketch.numeric) < 2 or stats.cross is None:
        return None
    bs = stats.numeric
    cr = stats.cross
    cur = correlation_from_moments(bs.count, bs.sum, bs.sumsq, cr["p"], cr["sm"], cr["qm"], cr["nm"])
    diff = cur - sketch.corr
    ok = np.isfinite(diff)
    if not ok.any():
        return CorrelationShift(math.nan, math.nan, [], cfg.correlation_threshold, False)
    absd = np.where(ok, np.abs(diff), -1.0)
    a, b = np.unravel_index(int(np.argmax(absd)), absd.shape)
    mx = float(absd[a, b])
    frob = float(np.sqrt(np.sum(diff[ok] ** 2)))
    return CorrelationShift(mx, frob, [sketch.numeric[a], sketch.numeric[b]], cfg.correlation_threshold, mx > cfg.correlation_threshold)
