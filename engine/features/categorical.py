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

Fitting from counts
-------------------
Every encoder is decided by :func:`fit_counts` from the column's level counts alone; the target
encoder's values and out-of-fold encodings come from :class:`TargetTables` (sums and rows per level
and fold). :func:`fit_categorical` builds both from the rows in memory; a partitioned fit merges
per-partition :class:`LevelStats` and :class:`TargetTotals` and calls :func:`fit_categorical_stats`,
after which any partition's training rows are encoded out of fold on their own
(:meth:`CategoricalFit.out_of_fold`).
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
    oof: np.ndarray | None = None  # target: out-of-fold encoding of every training row (in-memory fit)
    notes: list[str] = field(default_factory=list)
    target: TargetTables | None = None  # target: sums and counts per level and fold

    def out_of_fold(self, enc: Encoded, folds: np.ndarray, cfg: FeaturesConfig) -> np.ndarray:
        """Out-of-fold target encoding (float64) of training rows ``enc`` in folds ``folds``.

        Needs only the rows themselves and the fitted :class:`TargetTables`: any slice of the
        training rows (a partition) is encoded on its own.
        """
        if self.target is None:
            raise ValueError(f"column {self.column!r}: out-of-fold values exist for target encoding only")
        return self.target.encode(row_levels(enc, self.levels, self.fill), folds, float(cfg.target_smoothing))

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


def level_counts(enc: Encoded, xp: Any = np) -> tuple[np.ndarray, int]:
    """Rows per dictionary entry and the number of missing rows (``enc.codes``: an array of ``xp``)."""
    from engine.backend import to_numpy

    bc = xp.bincount(xp.asarray(enc.codes).astype(xp.int64, copy=False) + 1, minlength=len(enc.values) + 1)
    bc = np.asarray(to_numpy(bc))
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


def may_be_target(column: str, levels_seen: int, cfg: FeaturesConfig) -> bool:
    """Whether a column could still get the target encoder once every row is counted.

    ``levels_seen`` is a lower bound on the column's training levels (the distinct values of one
    partition): encoders reserved for fewer levels than that are ruled out.
    """
    if column in cfg.encoders:
        return cfg.encoders[column] is Encoder.target
    possible = [cfg.high_cardinality_encoder]
    if levels_seen <= cfg.high_cardinality:
        possible.append(cfg.medium_cardinality_encoder)
    return Encoder.target in possible


@dataclass
class TargetTables:
    """Target sums and row counts of one target-encoded column over every training row.

    Everything the encoding needs: the level values (:meth:`values`) and, for the training rows
    themselves, the out-of-fold encoding of any row given its level and fold (:meth:`encode`).
    """

    s_tot: np.ndarray  # (levels,) sum of y per level
    n_tot: np.ndarray  # (levels,) rows per level (float64)
    s_f: np.ndarray  # (folds, levels) sum of y per fold and level
    n_f: np.ndarray  # (folds, levels) rows per fold and level (float64)
    prior: float  # mean of y over every training row
    prior_oof: np.ndarray  # (folds,) mean of y over the rows outside each fold

    def values(self, m: float) -> np.ndarray:
        """Smoothed mean of y per level, then the prior (the value of an unseen level)."""
        return np.append((self.s_tot + m * self.prior) / np.maximum(self.n_tot + m, 1e-300), self.prior)

    def encode(self, row_level: Any, folds: Any, m: float, xp: Any = np) -> Any:
        """Out-of-fold encoding (float64) of rows at levels ``row_level`` in folds ``folds``.

        ``row_level`` and ``folds`` may live on a device: ``xp`` is their namespace (the tables are
        moved there; the result stays there).
        """
        s_tot, s_f, n_tot, n_f, prior_oof = (xp.asarray(a) for a in (self.s_tot, self.s_f, self.n_tot, self.n_f,
                                                                      self.prior_oof))
        s = s_tot[row_level] - s_f[folds, row_level]
        c = n_tot[row_level] - n_f[folds, row_level]
        p = prior_oof[folds]
        den = c + m
        with np.errstate(divide="ignore", invalid="ignore"):
            return xp.where(den > 0, (s + m * p) / xp.where(den > 0, den, 1.0), p)


def fold_tables(row_level: Any, n_levels: int, y: Any, folds: Any, k: int, xp: Any = np) -> TargetTables:
    """:class:`TargetTables` from every training row's level, target and fold.

    The rows may live on a device (``xp`` their namespace): the sums are taken there and only the
    (small) tables come back to the host. Sums of a non-integer target may then differ from the
    host's in the last bits (another order of addition).
    """
    from engine.backend import to_numpy

    n = int(row_level.shape[0])
    L = n_levels

    def host(a: Any) -> np.ndarray:
        return np.asarray(to_numpy(a))

    s_tot = host(xp.bincount(row_level, weights=y, minlength=L))
    n_tot = host(xp.bincount(row_level, minlength=L)).astype(np.float64)
    flat = folds * L + row_level
    s_f = host(xp.bincount(flat, weights=y, minlength=k * L)).reshape(k, L)
    n_f = host(xp.bincount(flat, minlength=k * L)).reshape(k, L).astype(np.float64)
    y_f = host(xp.bincount(folds, weights=y, minlength=k))
    c_f = host(xp.bincount(folds, minlength=k)).astype(np.float64)
    y_sum, y_mean = float(y.sum()), float(y.mean())
    rest = n - c_f
    prior_oof = np.where(rest > 0, (y_sum - y_f) / np.maximum(rest, 1.0), y_mean)
    return TargetTables(s_tot, n_tot, s_f, n_f, y_mean, prior_oof)


def target_out_of_fold(row_level: np.ndarray, n_levels: int, y: np.ndarray, m: float, folds: np.ndarray,
                       k: int) -> np.ndarray:
    """Each row's target encoding computed from the rows of the other folds only."""
    return fold_tables(row_level, n_levels, y, folds, k).encode(row_level, folds, m)


def level_table(values: np.ndarray, levels: list[str], fill: str) -> np.ndarray:
    """Per dictionary entry of ``values`` (then missing, last) -> index in ``levels`` (-1: not a level)."""
    lv_index = {v: i for i, v in enumerate(levels)}
    table = np.full(len(values) + 1, lv_index.get(fill, -1), dtype=np.intp)
    for i, v in enumerate(values.tolist()):
        table[i] = lv_index.get(str(v), -1)
    return table


def row_levels(enc: Encoded, levels: list[str], fill: str) -> np.ndarray:
    """Each row's index in ``levels`` (sorted level texts): missing rows get the fill level's, rows
    whose value is not a level -1."""
    return level_table(enc.values, levels, fill)[np.asarray(enc.codes)]


def fit_counts(column: str, values: list[str], counts: np.ndarray, n_missing: int, n: int, cfg: FeaturesConfig,
               has_target: bool) -> CategoricalFit:
    """Fit one categorical column from its level counts over every training row.

    The core shared by in-memory and partitioned fitting: a target-encoded column comes back with
    its levels but without values (:func:`with_target` adds them from the target sums).

    Parameters
    ----------
    column : str
        Column name (used in the feature names).
    values : list of str
        Distinct canonical texts of the column (any order; zero counts allowed).
    counts : int array
        Rows per entry of ``values``.
    n_missing : int
        Rows where the column is missing.
    n : int
        Training rows.
    cfg : FeaturesConfig
    has_target : bool
        Whether a target was given (target encoding falls back to frequency without one).
    """
    counts = np.asarray(counts, dtype=np.int64)
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
    if encoder is Encoder.target and not has_target:
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
    if encoder is Encoder.frequency:
        lv_index = {v: i for i, v in enumerate(levels)}
        lv_counts = np.zeros(len(levels), dtype=np.int64)
        for i in present:
            lv_counts[lv_index[values[i]]] = counts[i]
        vals = np.append(lv_counts / max(n, 1), 0.0)
        return CategoricalFit(column, "frequency", fill, n_levels, why, [f"{column}__freq"], levels=levels,
                              values=vals, notes=notes)
    return CategoricalFit(column, "target", fill, n_levels, why, [f"{column}__target"], levels=levels, notes=notes)


def with_target(fit: CategoricalFit, tables: TargetTables, cfg: FeaturesConfig) -> CategoricalFit:
    """Complete a target-encoded fit from its :class:`TargetTables` (values per level, prior last)."""
    fit.target = tables
    fit.values = tables.values(float(cfg.target_smoothing))
    return fit


def fit_categorical(column: str, enc: Encoded, y: Any, cfg: FeaturesConfig, folds: Any = None,
                    xp: Any = np) -> CategoricalFit:
    """Fit one categorical column from its (canonical) dictionary encoding over all training rows.

    A target-encoded column also gets ``oof``: the out-of-fold encoding of every training row
    (folds ``folds``, by default :func:`fold_ids`). The codes, ``y`` and ``folds`` may live on a
    device (``xp`` their namespace): counts and sums are taken there, ``oof`` stays there.
    """
    n = int(enc.codes.shape[0])
    counts, n_missing = level_counts(enc, xp)
    values = [str(v) for v in enc.values.tolist()]
    fit = fit_counts(column, values, counts, n_missing, n, cfg, has_target=y is not None)
    if fit.encoder != "target":
        return fit
    row_level = xp.asarray(level_table(enc.values, fit.levels, fit.fill))[xp.asarray(enc.codes)]
    yv = xp.asarray(y, dtype=xp.float64)
    k = cfg.target_folds
    folds = folds if folds is not None else xp.asarray(fold_ids(n, k, cfg.seed))
    with_target(fit, fold_tables(row_level, len(fit.levels), yv, folds, k, xp), cfg)
    fit.oof = fit.target.encode(row_level, folds, float(cfg.target_smoothing), xp)  # type: ignore[union-attr]
    return fit


# ------------------------------------------------------------------------ mergeable statistics
@dataclass
class TargetTotals:
    """Rows and target sums per fold over the training rows (mergeable across partitions)."""

    n: int
    y_sum: float
    fold_counts: np.ndarray  # (folds,) int64
    fold_sums: np.ndarray  # (folds,) float64

    @classmethod
    def of_rows(cls, y: np.ndarray, folds: np.ndarray, k: int) -> "TargetTotals":
        f = np.asarray(folds, dtype=np.intp)
        return cls(int(y.shape[0]), float(y.sum()), np.bincount(f, minlength=k).astype(np.int64),
                   np.bincount(f, weights=y, minlength=k))

    @classmethod
    def merge(cls, parts: list["TargetTotals"]) -> "TargetTotals":
        return cls(sum(p.n for p in parts), float(sum(p.y_sum for p in parts)),
                   np.sum([p.fold_counts for p in parts], axis=0), np.sum([p.fold_sums for p in parts], axis=0))

    def prior_oof(self) -> np.ndarray:
        """Mean of y over the rows outside each fold (the overall mean where a fold holds every row)."""
        rest = self.n - self.fold_counts.astype(np.float64)
        return np.where(rest > 0, (self.y_sum - self.fold_sums) / np.maximum(rest, 1.0), self.y_sum / self.n)


@dataclass
class LevelStats:
    """Counts of one categorical column over some training rows, mergeable across partitions.

    ``fold_counts`` / ``fold_sums`` (``(folds, len(values) + 1)``, the last column for the missing
    rows) hold rows and target sums per fold and value; ``None`` when no target was given or the
    column cannot be target-encoded (:func:`may_be_target`).
    """

    values: list[str]
    counts: np.ndarray
    n_missing: int
    n: int
    fold_counts: np.ndarray | None = None
    fold_sums: np.ndarray | None = None

    @classmethod
    def of_rows(cls, enc: Encoded, y: np.ndarray | None = None, folds: np.ndarray | None = None,
                k: int = 0) -> "LevelStats":
        """Statistics of the rows of one canonical encoding (with their target and folds, if given)."""
        counts, n_missing = level_counts(enc)
        values = [str(v) for v in enc.values.tolist()]
        codes = np.asarray(enc.codes)
        out = cls(values, counts, n_missing, int(codes.shape[0]))
        if y is not None and folds is not None:
            V = len(values) + 1
            col = codes.astype(np.intp, copy=True)
            col[col < 0] = V - 1
            flat = np.asarray(folds, dtype=np.intp) * V + col
            out.fold_counts = np.bincount(flat, minlength=k * V).reshape(k, V).astype(np.int64)
            out.fold_sums = np.bincount(flat, weights=y, minlength=k * V).reshape(k, V)
        return out

    @classmethod
    def merge(cls, parts: list["LevelStats"]) -> "LevelStats":
        """The statistics of the union of the parts' rows."""
        index: dict[str, int] = {}
        for p in parts:
            for v in p.values:
                index.setdefault(v, len(index))
        V = len(index)
        counts = np.zeros(V, dtype=np.int64)
        with_folds = bool(parts) and all(p.fold_counts is not None for p in parts)
        k = parts[0].fold_counts.shape[0] if with_folds else 0  # type: ignore[union-attr]
        fc = np.zeros((k, V + 1), dtype=np.int64) if with_folds else None
        fs = np.zeros((k, V + 1), dtype=np.float64) if with_folds else None
        for p in parts:
            pos = np.fromiter((index[v] for v in p.values), dtype=np.intp, count=len(p.values))
            counts[pos] += p.counts
            if fc is not None and fs is not None:
                ext = np.append(pos, V)
                fc[:, ext] += p.fold_counts
                fs[:, ext] += p.fold_sums
        return cls(list(index), counts, sum(p.n_missing for p in parts), sum(p.n for p in parts), fc, fs)


def fit_categorical_stats(column: str, stats: LevelStats, cfg: FeaturesConfig,
                          totals: TargetTotals | None = None) -> CategoricalFit:
    """Fit one categorical column from merged :class:`LevelStats` (``totals``: the target's, if given).

    Equals :func:`fit_categorical` on the same rows; target sums may differ in the last bits for a
    non-integer target, because they are added up in another order.
    """
    fit = fit_counts(column, stats.values, stats.counts, stats.n_missing, stats.n, cfg,
                     has_target=totals is not None)
    if fit.encoder != "target":
        return fit
    if totals is None or stats.fold_counts is None or stats.fold_sums is None:
        raise ValueError(f"column {column!r}: target encoding needs per-fold target sums")
    L = len(fit.levels)
    lv_index = {v: i for i, v in enumerate(fit.levels)}
    col_level = np.array([lv_index.get(v, -1) for v in stats.values] + [lv_index.get(fit.fill, -1)], dtype=np.intp)
    ok = col_level >= 0
    k = stats.fold_counts.shape[0]
    n_f = np.stack([np.bincount(col_level[ok], weights=stats.fold_counts[f, ok], minlength=L) for f in range(k)])
    s_f = np.stack([np.bincount(col_level[ok], weights=stats.fold_sums[f, ok], minlength=L) for f in range(k)])
    tables = TargetTables(s_f.sum(axis=0), n_f.sum(axis=0), s_f, n_f, totals.y_sum / totals.n, totals.prior_oof())
    return with_target(fit, tables, cfg)
