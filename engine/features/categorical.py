"""Fit the encoder of one categorical column: one-hot, hashing, frequency or target (out-of-fold).

Missing values are imputed first (the constant ``categorical_fill_value``, or the most frequent
level), so "missing" is a level like any other. Levels are the canonical texts of the runtime
(:func:`engine.features.runtime.canonical_category`).

Encoders
--------
onehot
    One column per frequent level (share >= ``rare_min_share``, at most ``onehot_max_levels`` of
    them, most frequent first) plus ``<col>=__other__`` for rare levels and, at apply time, unseen ones.
    When no training row is rare, ``__other__`` is constant and ``drop_constant`` removes it: an unseen
    value then gets all zeros in the column's one-hot block (still no error).
hashing
    ``hashing_buckets`` indicator columns; a value's bucket is ``hash(value) % buckets``
    (:func:`engine.features.runtime.hash_bytes`). Nothing is learned but the fill value.
frequency
    The level's share of the training rows; unseen levels get 0.
target
    The smoothed mean of the target per level, ``(sum_y + m * prior) / (count + m)`` with
    ``m = target_smoothing``; unseen levels get the prior (the training mean of y). On the training
    rows themselves the encoding is computed out of fold (``target_folds`` folds, each row encoded
    from the other folds only, prior included), so no row sees its own target.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.features.config import CategoricalImpute, Encoder, FeaturesConfig
from engine.features.runtime import Encoded

OTHER = "__other__"


@dataclass
class CategoricalFit:
    column: str
    encoder: str
    fill: str
    n_levels: int
    why: str
    names: list[str]
    levels: list[str] = field(default_factory=list)  # onehot: kept levels in output order; else sorted levels
    values: np.ndarray | None = None  # frequency / target: per sorted level, then the unseen value
    buckets: int = 0
    seed: int = 0
    oof: np.ndarray | None = None  # target: out-of-fold encoding of every training row
    notes: list[str] = field(default_factory=list)

    def entry(self, key: str, cols: list[int]) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """The runtime step and arrays, given each candidate output's column (-1 = dropped)."""
        if all(c < 0 for c in cols):
            return None
        ent: dict[str, Any] = {"column": self.column, "encoder": self.encoder, "fill": self.fill, "key": key}
        arrays: dict[str, np.ndarray] = {}
        if self.encoder == "hashing":
            ent["buckets"] = self.buckets
            ent["seed"] = self.seed
            arrays[f"{key}_out"] = np.array(cols, dtype=np.int64)
            return ent, arrays
        # the runtime looks levels up with np.searchsorted: store them in NumPy's own order
        text = _text_array(self.levels)
        order = np.argsort(text, kind="stable")
        arrays[f"{key}_levels"] = text[order]
        if self.encoder == "onehot":
            arrays[f"{key}_out"] = np.append(np.asarray(cols[:-1], dtype=np.int64)[order], cols[-1])
        else:
            ent["out"] = int(cols[0])
            vals = np.asarray(self.values, dtype=np.float64)
            arrays[f"{key}_values"] = np.append(vals[:-1][order], vals[-1])
        return ent, arrays


def _text_array(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=str) if values else np.zeros(0, dtype="<U1")


def level_counts(enc: Encoded) -> tuple[np.ndarray, int]:
    """Rows per dictionary entry and the number of missing rows."""
    bc = np.bincount(np.asarray(enc.codes).astype(np.intp, copy=False) + 1, minlength=len(enc.values) + 1)
    return bc[1:].astype(np.int64), int(bc[0])


def fold_ids(n: int, k: int, seed: int) -> np.ndarray:
    """Fold of each row: a seeded permutation dealt round-robin into ``k`` folds of near-equal size."""
    folds = np.empty(n, dtype=np.intp)
    folds[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return folds


def choose_encoder(column: str, n_levels: int, cfg: FeaturesConfig) -> tuple[Encoder, str]:
    """The encoder for a column with ``n_levels`` training levels, and why."""
    if column in cfg.encoders:
        return cfg.encoders[column], "features.encoders"
    if n_levels <= cfg.onehot_max_levels:
        return Encoder.onehot, f"{n_levels} levels <= onehot_max_levels ({cfg.onehot_max_levels})"
    if n_levels <= cfg.high_cardinality:
        return cfg.medium_cardinality_encoder, f"{n_levels} levels <= high_cardinality ({cfg.high_cardinality})"
    return cfg.high_cardinality_encoder, f"{n_levels} levels > high_cardinality ({cfg.high_cardinality})"


def fit_categorical(column: str, enc: Encoded, y: np.ndarray | None, cfg: FeaturesConfig,
                    folds: np.ndarray | None = None) -> CategoricalFit:
    """Fit one categorical column from its (canonical) dictionary encoding over all training rows."""
    n = int(np.asarray(enc.codes).shape[0])
    counts, n_missing = level_counts(enc)
    values = [str(v) for v in enc.values.tolist()]
    if cfg.impute_categorical is CategoricalImpute.most_frequent and counts.size and counts.max() > 0:
        order = np.lexsort((_text_array(values), -counts))
        fill = values[int(order[0])]
    else:
        fill = cfg.categorical_fill_value
    index = {v: i for i, v in enumerate(values)}
    if n_missing:
        if fill in index:
            counts = counts.copy()
            counts[index[fill]] += n_missing
        else:
            values = values + [fill]
            counts = np.append(counts, n_missing)
    present = [i for i in range(len(values)) if counts[i] > 0]
    n_levels = len(present)
    encoder, why = choose_encoder(column, n_levels, cfg)
    notes: list[str] = []
    if encoder is Encoder.target and y is None:
        encoder = Encoder.frequency
        notes.append("no target given at fit: frequency encoding instead of target encoding")
    if encoder is Encoder.hashing:
        names = [f"{column}__hash{b}" for b in range(cfg.hashing_buckets)]
        return CategoricalFit(column, "hashing", fill, n_levels, why, names, buckets=cfg.hashing_buckets,
                              seed=cfg.seed, notes=notes)
    if encoder is Encoder.onehot:
        texts = _text_array([values[i] for i in present])
        cnt = counts[present]
        order = np.lexsort((texts, -cnt))  # most frequent first, ties by text
        share = cnt / max(n, 1)
        kept = [str(texts[i]) for i in order if share[i] >= cfg.rare_min_share][: cfg.onehot_max_levels]
        names = [f"{column}={lv}" for lv in kept] + [f"{column}={OTHER}"]
        return CategoricalFit(column, "onehot", fill, n_levels, why, names, levels=kept, notes=notes)
    levels = sorted(values[i] for i in present)
    lv_index = {v: i for i, v in enumerate(levels)}
    lv_counts = np.zeros(len(levels), dtype=np.int64)
    for i in present:
        lv_counts[lv_index[values[i]]] = counts[i]
    if encoder is Encoder.frequency:
        vals = np.append(lv_counts / max(n, 1), 0.0)
        return CategoricalFit(column, "frequency", fill, n_levels, why, [f"{column}__freq"], levels=levels,
                              values=vals, notes=notes)
    # target encoding: every row's level index in `levels` (missing -> the fill level)
    table = np.full(len(enc.values) + 1, lv_index.get(fill, -1), dtype=np.intp)
    for i, v in enumerate(enc.values.tolist()):
        table[i] = lv_index.get(str(v), -1)
    row_level = table[np.asarray(enc.codes)]
    yv = np.asarray(y, dtype=np.float64)
    m = float(cfg.target_smoothing)
    prior = float(yv.mean())
    L = len(levels)
    s_tot = np.bincount(row_level, weights=yv, minlength=L)
    n_tot = np.bincount(row_level, minlength=L).astype(np.float64)
    vals = np.append((s_tot + m * prior) / np.maximum(n_tot + m, 1e-300), prior)
    fit = CategoricalFit(column, "target", fill, n_levels, why, [f"{column}__target"], levels=levels, values=vals,
                         notes=notes)
    fit.oof = target_out_of_fold(row_level, L, yv, m, folds if folds is not None else
                                 fold_ids(n, cfg.target_folds, cfg.seed), cfg.target_folds)
    return fit


def target_out_of_fold(row_level: np.ndarray, n_levels: int, y: np.ndarray, m: float, folds: np.ndarray,
                       k: int) -> np.ndarray:
    """Each row's target encoding computed from the rows of the other folds only."""
    n = row_level.shape[0]
    L = n_levels
    s_tot = np.bincount(row_level, weights=y, minlength=L)
    n_tot = np.bincount(row_level, minlength=L).astype(np.float64)
    flat = folds * L + row_level
    s_f = np.bincount(flat, weights=y, minlength=k * L).reshape(k, L)
    n_f = np.bincount(flat, minlength=k * L).reshape(k, L).astype(np.float64)
    y_f = np.bincount(folds, weights=y, minlength=k)
    c_f = np.bincount(folds, minlength=k).astype(np.float64)
    rest = n - c_f
    prior_oof = np.where(rest > 0, (y.sum() - y_f) / np.maximum(rest, 1.0), y.mean())
    s = s_tot[row_level] - s_f[folds, row_level]
    c = n_tot[row_level] - n_f[folds, row_level]
    p = prior_oof[folds]
    den = c + m
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (s + m * p) / np.where(den > 0, den, 1.0), p)
