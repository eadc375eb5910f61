"""Train / validation / test splits: stratified for a binary target, ordered by time when a date is declared.

Splits are row positions (``np.int64``, ascending) into the validated frame, so they can be stored,
hashed and re-applied.

Example
-------
>>> import numpy as np
>>> y = np.array([0, 1] * 50)
>>> s = split_indices(100, y=y, seed=3)
>>> [len(s[k]) for k in SPLITS], [round(float(y[s[k]].mean()), 3) for k in SPLITS]
([70, 15, 15], [0.5, 0.467, 0.533])
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.errors import ConfigError, DataError

SPLITS = ("train", "valid", "test")


def check_fractions(train: float, valid: float, test: float) -> tuple[float, float, float]:
    """Validate split fractions: train and test positive, valid non-negative, summing to 1.

    Raises
    ------
    ConfigError
        Naming ``model.split`` and the offending values.
    """
    f = (float(train), float(valid), float(test))
    if f[0] <= 0 or f[2] <= 0 or f[1] < 0:
        raise ConfigError(f"model.split: train and test must be > 0 and valid >= 0; got train={f[0]}, "
                          f"valid={f[1]}, test={f[2]}")
    if abs(sum(f) - 1.0) > 1e-6:
        raise ConfigError(f"model.split: train + valid + test must sum to 1, got {sum(f):.6g} "
                          f"(train={f[0]}, valid={f[1]}, test={f[2]})")
    return f


def _cut(n: int, fractions: tuple[float, float, float]) -> tuple[int, int]:
    n_train = int(round(n * fractions[0]))
    n_valid = int(round(n * fractions[1]))
    n_train = min(n_train, n)
    n_valid = min(n_valid, n - n_train)
    return n_train, n_train + n_valid


def _quota(counts: np.ndarray, share: float, total: int) -> np.ndarray:
    """Per-group counts near ``counts * share`` summing exactly to ``total`` (largest remainders)."""
    ideal = counts * share
    base = np.floor(ideal).astype(np.int64)
    rest = int(total - base.sum())
    if rest > 0:
        order = np.argsort(-(ideal - base), kind="stable")
        base[order[:rest]] += 1
    return np.minimum(base, counts)


def _allocate(counts: np.ndarray, fr: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-group cut points (end of train, end of valid) so that the split sizes match the whole's."""
    a_total, b_total = _cut(int(counts.sum()), fr)
    a = _quota(counts, fr[0], a_total)
    b = np.maximum(_quota(counts, fr[0] + fr[1], b_total), a)
    return a, b


def split_indices(n: int, *, y: np.ndarray | None = None, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                  stratify: bool = True, order_by: np.ndarray | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Row positions of the train, validation and test splits.

    Parameters
    ----------
    n : int
        Number of rows.
    y : array, optional
        Binary 0/1 target: with ``stratify`` every split keeps the positive rate (per-class shuffles).
    fractions : (train, valid, test)
    stratify : bool
    order_by : array, optional
        Dates (datetime64 or numbers): the oldest rows go to train, the newest to test; rows without a
        date go to train. Takes precedence over stratification; ``seed`` is then unused.
    seed : int
        Seeds the shuffles.

    Returns
    -------
    dict
        ``{"train", "valid", "test"}`` -> ascending ``np.int64`` positions; together a partition of
        ``range(n)``.

    Raises
    ------
    ConfigError
        Bad fractions.
    DataError
        Too few rows for three splits.
    """
    fr = check_fractions(*fractions)
    n = int(n)
    if n < 3:
        raise DataError(f"split: {n} row(s) cannot make train, validation and test splits; need at least 3")
    if order_by is not None:
        order = _time_order(np.asarray(order_by))
        a, b = _cut(n, fr)
        parts = (order[:a], order[a:b], order[b:])
    else:
        rng = np.random.default_rng(int(seed))
        if stratify and y is not None:
            y = np.asarray(y)
            groups = [np.flatnonzero(y == c) for c in np.unique(y)]
        else:
            groups = [np.arange(n)]
        counts = np.array([len(g) for g in groups])
        a_c, b_c = _allocate(counts, fr)
        acc: list[list[np.ndarray]] = [[], [], []]
        for g, a, b in zip(groups, a_c, b_c):
            perm = rng.permutation(g)
            for i, part in enumerate((perm[:a], perm[a:b], perm[b:])):
                acc[i].append(part)
        parts = tuple(np.concatenate(p) if p else np.empty(0, np.int64) for p in acc)
    return {k: np.sort(np.asarray(p, dtype=np.int64)) for k, p in zip(SPLITS, parts)}


def _time_order(dates: np.ndarray) -> np.ndarray:
    """Positions sorted by date, oldest first; rows without a date first (they go to train)."""
    if np.issubdtype(dates.dtype, np.datetime64):
        missing = np.isnat(dates)
        keys = dates.astype("datetime64[ns]").astype(np.int64)
    else:
        vals = np.asarray(dates, dtype=np.float64)
        missing = np.isnan(vals)
        keys = vals
    keys = np.where(missing, np.iinfo(np.int64).min if keys.dtype == np.int64 else -np.inf, keys)
    return np.argsort(keys, kind="stable")


def index_sha256(idx: np.ndarray) -> str:
    """SHA-256 of row positions as little-endian int64 (what splits.json records)."""
    return hashlib.sha256(np.ascontiguousarray(np.asarray(idx, dtype="<i8")).tobytes()).hexdigest()


def split_record(splits: Mapping[str, np.ndarray], y: np.ndarray, task: str, *, method: str, seed: int,
                 fractions: tuple[float, float, float], dates: np.ndarray | None = None,
                 date_column: str | None = None) -> dict[str, Any]:
    """The content of splits.json: method, fractions, seed and, per split, size, target summary and hash."""
    y = np.asarray(y)
    rec: dict[str, Any] = {"method": method, "seed": int(seed),
                           "fractions": dict(zip(SPLITS, map(float, fractions))), "splits": {}}
    if date_column:
        rec["date_column"] = date_column
    for name in SPLITS:
        idx = np.asarray(splits[name])
        part: dict[str, Any] = {"rows": int(len(idx)), "index_sha256": index_sha256(idx)}
        if len(idx):
            yy = y[idx].astype(np.float64)
            if task == "binary":
                part["positives"] = int(yy.sum())
                part["positive_rate"] = float(yy.mean())
            else:
                part["target_mean"] = float(yy.mean())
                part["target_std"] = float(yy.std())
        if dates is not None and len(idx):
            d = np.asarray(dates)[idx]
            if np.issubdtype(d.dtype, np.datetime64):
                ok = d[~np.isnat(d)]
                part["missing_dates"] = int(len(d) - len(ok))
                if len(ok):
                    part["date_min"] = str(ok.min())
                    part["date_max"] = str(ok.max())
        rec["splits"][name] = part
    return rec


def subsample(y: np.ndarray, n: int, *, seed: int = 0, stratify: bool = True) -> np.ndarray:
    """Ascending positions of a seeded sample of ``n`` rows (all rows when ``n`` >= their number),
    keeping the class shares of a binary ``y`` when ``stratify``."""
    y = np.asarray(y)
    total = len(y)
    if n <= 0 or n >= total:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng(int(seed))
    if not stratify:
        return np.sort(rng.choice(total, size=int(n), replace=False)).astype(np.int64)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)]
    counts = np.array([len(g) for g in groups])
    take = _quota(counts, n / total, int(n))
    parts = [rng.choice(g, size=int(t), replace=False) for g, t in zip(groups, take)]
    return np.sort(np.concatenate(parts)).astype(np.int64)
