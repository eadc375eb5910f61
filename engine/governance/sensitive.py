"""Sensitive attributes and their proxies.

Sensitive attributes (``governance.sensitive``) are matched to columns case-insensitively and never enter
the features. A *proxy* is a feature whose association with a sensitive attribute exceeds
``governance.proxy_threshold``; it would let a model learn the attribute indirectly.

Association, in [0, 1], by the kinds of the two columns:

- categorical x categorical: Cramér's V with Bergsma's bias correction (so that a feature with many
  levels does not look associated by chance);
- categorical x numeric: the correlation ratio eta, adjusted for the number of groups like an adjusted R²;
- numeric x numeric: the absolute Pearson correlation on rows where both are present.

Missing categorical values form a level of their own; rows missing a numeric value are left out of
that pair. Dates count as numeric. Work is vectorised over features (one sparse product per
categorical sensitive attribute, one masked product per numeric one).

Example
-------
>>> import pandas as pd
>>> df = pd.DataFrame({"Gender": ["f", "m"] * 50, "title": ["Ms", "Mr"] * 50, "x": range(100)})
>>> found, absent = resolve_sensitive(["gender", "race"], df.columns)
>>> found, absent
({'gender': ['Gender']}, ['race'])
>>> assoc = associations(df, ["Gender"], ["title", "x"], {"Gender": "categorical", "title": "categorical"})
>>> sorted((a["feature"], a["measure"]) for a in assoc)
[('title', 'cramers_v'), ('x', 'correlation_ratio')]
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

CATEGORICAL_KINDS = ("categorical", "text")
NUMERIC_KINDS = ("numeric", "datetime")
#: Kinds that never become features (and are not checked as proxies).
NOT_FEATURES = ("id", "target", "text")


def resolve_sensitive(names: Iterable[str], columns: Iterable[Any]) -> tuple[dict[str, list[str]], list[str]]:
    """Match sensitive attribute names to columns, ignoring case.

    Returns
    -------
    found : dict
        requested name -> the matching column names (in frame order).
    absent : list
        Requested names with no matching column.
    """
    cols = [str(c) for c in columns]
    found: dict[str, list[str]] = {}
    absent: list[str] = []
    for name in names:
        hits = [c for c in cols if c.casefold() == str(name).casefold()]
        if hits:
            found[str(name)] = hits
        else:
            absent.append(str(name))
    return found, absent


def _kind_of(series: Any, declared: str | None) -> str:
    import pandas as pd

    if declared in CATEGORICAL_KINDS or declared in NUMERIC_KINDS:
        return "categorical" if declared in CATEGORICAL_KINDS else "numeric"
    if pd.api.types.is_bool_dtype(series.dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_datetime64_any_dtype(series.dtype):
        return "numeric"
    return "categorical"


def _codes(series: Any) -> tuple[np.ndarray, int]:
    """Integer codes with missing values as a level of their own."""
    import pandas as pd

    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    k = len(uniques)
    if (codes < 0).any():
        codes = np.where(codes < 0, k, codes)
        k += 1
    return codes, max(k, 1)


def _numeric(series: Any) -> np.ndarray:
    """float64 values with NaN for missing; dates as nanoseconds since the epoch."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        s = series.dt.tz_localize(None) if getattr(series.dt, "tz", None) is not None else series
        v = s.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
        v[s.isna().to_numpy()] = np.nan
        return v
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale columns ignoring NaN; returns (values with NaN -> 0, presence mask)."""
    mask = ~np.isnan(X)
    with np.errstate(invalid="ignore", divide="ignore"):
        cnt = mask.sum(axis=0)
        mean = np.where(cnt > 0, np.nansum(X, axis=0) / np.maximum(cnt, 1), 0.0)
        Z = np.where(mask, X - mean, 0.0)
        sd = np.sqrt((Z ** 2).sum(axis=0) / np.maximum(cnt, 1))
        Z = Z / np.where(sd > 0, sd, 1.0)
    return Z, mask.astype(np.float64)


def cramers_v(a: np.ndarray, b: np.ndarray, ka: int | None = None, kb: int | None = None) -> float:
    """Bias-corrected Cramér's V (Bergsma 2013) of two integer-coded columns.

    >>> round(cramers_v(np.array([0, 1] * 50), np.array([0, 1] * 50)), 6)
    1.0
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    n = len(a)
    if n < 2:
        return 0.0
    ka = int(a.max()) + 1 if ka is None else int(ka)
    kb = int(b.max()) + 1 if kb is None else int(kb)
    table = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb).astype(np.float64)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    r, c = table.shape
    if r < 2 or c < 2:
        return 0.0
    rows = table.sum(axis=1, keepdims=True)
    cols = table.sum(axis=0, keepdims=True)
    expected = rows @ cols / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    phi2 = max(0.0, chi2 / n - (r - 1) * (c - 1) / (n - 1))
    r_c = r - (r - 1) ** 2 / (n - 1)
    c_c = c - (c - 1) ** 2 / (n - 1)
    denom = min(r_c - 1, c_c - 1)
    if denom <= 0:
        return 0.0
    return float(min(1.0, np.sqrt(phi2 / denom)))


def _adjusted_eta(ssb: np.ndarray, sst: np.ndarray, n: np.ndarray, groups: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        eta2 = np.where(sst > 0, ssb / sst, 0.0)
        dof = n - groups
        adj = np.where(dof > 0, 1.0 - (1.0 - eta2) * (n - 1) / np.maximum(dof, 1), 0.0)
    return np.sqrt(np.clip(adj, 0.0, 1.0))


def correlation_ratio_many(codes: np.ndarray, k: int, X: np.ndarray) -> np.ndarray:
    """Adjusted correlation ratio between one categorical column (codes) and each column of ``X``
    (NaN = missing), in one sparse product."""
    from scipy import sparse

    Z, M = _standardise(np.asarray(X, dtype=np.float64))
    n = len(codes)
    G = sparse.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, k))
    cnt = np.asarray(G.T @ M)          # k x p rows per group present in each column
    s1 = np.asarray(G.T @ Z)           # k x p sums per group
    N = M.sum(axis=0)
    S = Z.sum(axis=0)
    sst = (Z ** 2).sum(axis=0) - S ** 2 / np.maximum(N, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ssb = np.where(cnt > 0, s1 ** 2 / np.maximum(cnt, 1), 0.0).sum(axis=0) - S ** 2 / np.maximum(N, 1)
    groups = (cnt > 0).sum(axis=0)
    return _adjusted_eta(ssb, sst, N, groups)


def correlation_ratio(codes: np.ndarray, k: int, x: np.ndarray) -> float:
    """Adjusted correlation ratio between a categorical column and one numeric column."""
    return float(correlation_ratio_many(codes, k, np.asarray(x, dtype=np.float64)[:, None])[0])


def abs_pearson_many(s: np.ndarray, X: np.ndarray) -> np.ndarray:
    """|Pearson r| between ``s`` and each column of ``X`` on the rows where both are present."""
    s = np.asarray(s, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    ms = ~np.isnan(s)
    mean_s = s[ms].mean() if ms.any() else 0.0
    sd_s = s[ms].std() if ms.any() else 1.0
    sc = np.where(ms, (s - mean_s) / (sd_s if sd_s > 0 else 1.0), 0.0)
    Z, M = _standardise(X)
    msf = ms.astype(np.float64)
    n = msf @ M
    sx, ss = msf @ Z, sc @ M
    sxx, sss, sxs = msf @ (Z ** 2), (sc ** 2) @ M, sc @ Z
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxs - sx * ss / np.maximum(n, 1)
        vx = sxx - sx ** 2 / np.maximum(n, 1)
        vs = sss - ss ** 2 / np.maximum(n, 1)
        r = np.where((vx > 1e-12) & (vs > 1e-12) & (n > 2), cov / np.sqrt(vx * vs), 0.0)
    return np.clip(np.abs(r), 0.0, 1.0)


def associations(frame: Any, sensitive: Sequence[str], features: Sequence[str],
                 kinds: Mapping[str, str] | None = None, *, sample_rows: int = 200_000,
                 seed: int = 0) -> list[dict[str, Any]]:
    """Association of every feature with every sensitive column.

    Parameters
    ----------
    frame : pandas.DataFrame
    sensitive, features : column names
    kinds : mapping, optional
        column -> numeric | categorical | datetime | text (inferred from the dtype when absent).
    sample_rows : int
        Use a seeded sample of this many rows when the frame is larger (0 = all rows).

    Returns
    -------
    list of dict
        ``{"feature", "sensitive", "measure", "value"}``, highest value first.
    """
    kinds = dict(kinds or {})
    if sample_rows and len(frame) > sample_rows:
        rng = np.random.default_rng(int(seed))
        frame = frame.iloc[np.sort(rng.choice(len(frame), size=int(sample_rows), replace=False))]
    feats = [f for f in features if f not in set(sensitive)]
    fk = {f: _kind_of(frame[f], kinds.get(f)) for f in feats}
    num_feats = [f for f in feats if fk[f] == "numeric"]
    cat_feats = [f for f in feats if fk[f] == "categorical"]
    Xnum = np.column_stack([_numeric(frame[f]) for f in num_feats]) if num_feats else None
    cat_codes = {f: _codes(frame[f]) for f in cat_feats}
    out: list[dict[str, Any]] = []
    for s in sensitive:
        sk = _kind_of(frame[s], kinds.get(s))
        if sk == "categorical":
            codes, k = _codes(frame[s])
            if Xnum is not None:
                for f, v in zip(num_feats, correlation_ratio_many(codes, k, Xnum)):
                    out.append({"feature": f, "sensitive": s, "measure": "correlation_ratio", "value": float(v)})
            for f in cat_feats:
                fc, fkk = cat_codes[f]
                out.append({"feature": f, "sensitive": s, "measure": "cramers_v",
                            "value": cramers_v(codes, fc, k, fkk)})
        else:
            sv = _numeric(frame[s])
            if Xnum is not None:
                for f, v in zip(num_feats, abs_pearson_many(sv, Xnum)):
                    out.append({"feature": f, "sensitive": s, "measure": "abs_pearson", "value": float(v)})
            present = ~np.isnan(sv)
            for f in cat_feats:
                fc, fkk = cat_codes[f]
                v = correlation_ratio(fc[present], fkk, sv[present]) if present.sum() > 2 else 0.0
                out.append({"feature": f, "sensitive": s, "measure": "correlation_ratio", "value": v})
    out.sort(key=lambda r: (-r["value"], r["feature"], r["sensitive"]))
    return out


def detect_proxies(assoc: Iterable[Mapping[str, Any]], threshold: float) -> dict[str, dict[str, Any]]:
    """Features whose strongest association with a sensitive column exceeds ``threshold``.

    Returns
    -------
    dict
        feature -> ``{"sensitive", "measure", "value"}`` of its strongest association.
    """
    best: dict[str, dict[str, Any]] = {}
    for a in assoc:
        cur = best.get(a["feature"])
        if cur is None or a["value"] > cur["value"]:
            best[a["feature"]] = {"sensitive": a["sensitive"], "measure": a["measure"], "value": a["value"]}
    return {f: r for f, r in sorted(best.items()) if r["value"] > float(threshold)}


def feature_columns(frame: Any, kinds: Mapping[str, str], *, target: str | None = None,
                    id_column: str | None = None) -> list[str]:
    """Columns that could enter the features: everything but the target, id and free-text columns."""
    out = []
    for c in frame.columns:
        c = str(c)
        if c == target or c == id_column or kinds.get(c) in NOT_FEATURES:
            continue
        out.append(c)
    return out


def review(frame: Any, kinds: Mapping[str, str], *, sensitive_names: Sequence[str], threshold: float,
           drop_proxies: bool = True, target: str | None = None, id_column: str | None = None,
           sample_rows: int = 200_000, seed: int = 0, enabled: bool = True) -> dict[str, Any]:
    """The governance review of a frame: sensitive columns, proxies and what to exclude from the features.

    Returns
    -------
    dict
        The content of governance.json; ``excluded`` maps column -> reason and ``sensitive_columns``
        lists the matched sensitive columns (kept in the frame for fairness checks).
    """
    found, absent = resolve_sensitive(sensitive_names, frame.columns)
    columns = [c for cols in found.values() for c in cols]
    candidates = [c for c in feature_columns(frame, kinds, target=target, id_column=id_column) if c not in columns]
    assoc = associations(frame, columns, candidates, kinds, sample_rows=sample_rows, seed=seed) if columns else []
    proxies = detect_proxies(assoc, threshold)
    excluded: dict[str, str] = {}
    if enabled:
        for c in columns:
            excluded[c] = "sensitive attribute (governance.sensitive)"
        if drop_proxies:
            for f, r in proxies.items():
                excluded[f] = (f"proxy of sensitive attribute {r['sensitive']!r}: {r['measure']} "
                               f"{r['value']:.3f} > governance.proxy_threshold {float(threshold):g}")
    used_sensitive = [c for c in columns if c not in excluded]
    kept_proxies = [f for f in proxies if f not in excluded]
    return {
        "enabled": bool(enabled),
        "sensitive_requested": [str(s) for s in sensitive_names],
        "sensitive_found": found,
        "sensitive_absent": absent,
        "sensitive_columns": columns,
        "proxy_threshold": float(threshold),
        "drop_proxies": bool(drop_proxies),
        "rows_checked": int(min(len(frame), sample_rows) if sample_rows else len(frame)),
        "proxies": proxies,
        "excluded": excluded,
        "sensitive_used_as_features": used_sensitive,
        "proxies_kept": kept_proxies,
        "associations": assoc,
    }
