"""Fit the numeric chain of one column: impute, clip, scale (the runtime applies them in that order).

The statistics follow a scikit-learn ``Pipeline(imputer, clipper, scaler)``: the fill value and the
clip bounds come from the observed (finite) training values; the scaler is fitted on the training
values after imputation and clipping. Quantiles (the median included) use NumPy's default (linear)
interpolation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.features.config import ClipMethod, FeaturesConfig, ImputeStrategy, Scaler


@dataclass(frozen=True)
class NumericFit:
    """Fitted parameters of one numeric step (one row of the runtime's ``numeric_params``)."""

    fill: float
    lo: float
    hi: float
    center: float
    scale: float
    observed: int  # finite training values the statistics saw

    def row(self) -> list[float]:
        return [self.fill, self.lo, self.hi, self.center, self.scale]


def _mode(v: np.ndarray) -> float:
    vals, counts = np.unique(v, return_counts=True)
    return float(vals[int(np.argmax(counts))])  # ties: the smallest value


def fit_numeric(x: np.ndarray, cfg: FeaturesConfig) -> NumericFit:
    """Fit impute / clip / scale on the training values ``x`` (float, NaN and +/-inf = missing).

    A column without any observed value gets the constant fill (``cfg.fill_value`` for the constant
    strategy, else 0) and no clipping or scaling: it becomes a constant feature.

    Examples
    --------
    >>> from engine.features.config import resolve_config
    >>> f = fit_numeric(np.array([1.0, 2.0, np.nan, 10.0]), resolve_config(clip="none", scaler="none"))
    >>> f.fill, f.center, f.scale
    (2.0, 0.0, 1.0)
    """
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    obs = x[finite]
    if obs.size == 0:
        fill = float(cfg.fill_value) if cfg.impute is ImputeStrategy.constant else 0.0
        return NumericFit(fill, -math.inf, math.inf, 0.0, 1.0, 0)
    # every quantile the fill and the clip bounds need, from one partial sort
    qs: list[float] = []
    if cfg.impute is ImputeStrategy.median:
        qs.append(0.5)
    if cfg.clip is ClipMethod.quantile:
        qs.extend(cfg.clip_quantiles)
    elif cfg.clip is ClipMethod.iqr:
        qs.extend([0.25, 0.75])
    qv = dict(zip(qs, (float(v) for v in np.quantile(obs, qs)))) if qs else {}
    if cfg.impute is ImputeStrategy.median:
        fill = qv[0.5]
    elif cfg.impute is ImputeStrategy.mean:
        fill = float(np.mean(obs))
    elif cfg.impute is ImputeStrategy.most_frequent:
        fill = _mode(obs)
    else:
        fill = float(cfg.fill_value)
    if cfg.clip is ClipMethod.quantile:
        lo, hi = qv[cfg.clip_quantiles[0]], qv[cfg.clip_quantiles[1]]
    elif cfg.clip is ClipMethod.iqr:
        q1, q3 = qv[0.25], qv[0.75]
        k = float(cfg.clip_iqr_factor)
        lo, hi = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
    else:
        lo, hi = -math.inf, math.inf
    if cfg.scaler is Scaler.none:
        return NumericFit(fill, lo, hi, 0.0, 1.0, int(obs.size))
    v = np.where(finite, x, fill)
    np.clip(v, lo, hi, out=v)
    if cfg.scaler is Scaler.standard:
        center, scale = float(v.mean()), float(v.std())
    else:
        q1, center, q3 = (float(t) for t in np.quantile(v, [0.25, 0.5, 0.75]))
        scale = q3 - q1
    if not math.isfinite(center):
        center = 0.0
    if not (math.isfinite(scale) and scale > 0.0):
        scale = 1.0
    return NumericFit(fill, lo, hi, center, scale, int(obs.size))
