"""Column kinds: what each column means to the pipeline, inferred from its values or declared in config.

Kinds are ``numeric``, ``categorical``, ``datetime``, ``text`` and ``id`` for the columns, plus ``target``
for the column to predict. Inference looks at the pandas dtype first (numbers are numeric, booleans and
``category`` columns are categorical, timestamps are datetime); a string column is datetime when every
value is an ISO 8601 date, numeric when every value parses as a number, free text when its values are
long and mostly distinct, and categorical otherwise. ``data.dtypes`` overrides any of this per column.

The ``to_*`` converters turn a column into the representation the pipeline uses for its kind
(float64 with NaN; ``category`` with string levels; ``datetime64``; ``str``) and report which non-missing
values could not be converted. They work on whole columns (on the distinct levels for ``category``
columns), never row by row.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import ConfigError

NUMERIC = "numeric"
CATEGORICAL = "categorical"
DATETIME = "datetime"
TEXT = "text"
ID = "id"
TARGET = "target"
#: Kinds a column may be declared as in ``data.dtypes``.
KINDS = (NUMERIC, CATEGORICAL, DATETIME, TEXT, ID)
#: Kinds that are model inputs.
FEATURE_KINDS = (NUMERIC, CATEGORICAL, DATETIME, TEXT)

_ISO_DATE = r"^\s*\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\s*$"
#: A string column is free text (not categorical) when at least this share of its values is distinct ...
TEXT_DISTINCT_SHARE = 0.5
#: ... and its values are this long on average.
TEXT_MEAN_LENGTH = 30


def check_declared(dtypes: Mapping[str, Any] | None) -> dict[str, str]:
    """Validate ``data.dtypes``: every value must be one of :data:`KINDS`.

    Raises
    ------
    ConfigError
        Naming the column and the allowed kinds.
    """
    out: dict[str, str] = {}
    for col, kind in dict(dtypes or {}).items():
        k = str(getattr(kind, "value", kind)).strip().lower()
        if k not in KINDS:
            raise ConfigError(f"data.dtypes.{col}: expected one of {', '.join(KINDS)}; got {kind!r}")
        out[str(col)] = k
    return out


def infer_kind(series: pd.Series) -> str:
    """The kind of one column, from its dtype and (for strings) its values.

    Examples
    --------
    >>> infer_kind(pd.Series([1.5, None]))
    'numeric'
    >>> infer_kind(pd.Series(["2024-01-31", "2024-02-29"]))
    'datetime'
    >>> infer_kind(pd.Series(["rent", "own", "rent"]))
    'categorical'
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return CATEGORICAL
    if pd.api.types.is_numeric_dtype(dtype):
        return NUMERIC
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return DATETIME
    values = series.dropna()
    if values.empty:
        return CATEGORICAL
    uniques = pd.Series(pd.unique(values.astype("str")), dtype="str")
    if uniques.str.match(_ISO_DATE).all():
        _, bad = to_datetime(uniques)
        if not bad.any():
            return DATETIME
    if not pd.to_numeric(uniques, errors="coerce").isna().any():
        return NUMERIC
    if len(uniques) >= TEXT_DISTINCT_SHARE * len(values) and uniques.str.len().mean() >= TEXT_MEAN_LENGTH:
        return TEXT
    return CATEGORICAL


def infer_kinds(frame: pd.DataFrame, target: str | None = None, id_column: str | None = None,
                declared: Mapping[str, str] | None = None, date_column: str | None = None) -> dict[str, str]:
    """Kind of every column of ``frame``: declared ones as declared, the target as ``target``.

    Parameters
    ----------
    frame : pandas.DataFrame
    target : str, optional
        The column to predict (kind ``target``).
    id_column : str, optional
        A row identifier (kind ``id``).
    declared : mapping, optional
        ``{column: kind}`` overriding inference (see :func:`check_declared`).
    date_column : str, optional
        A date column (kind ``datetime`` whatever its dtype).

    Returns
    -------
    dict
        ``{column: kind}`` in the frame's column order.
    """
    declared = check_declared(declared)
    kinds: dict[str, str] = {}
    for col in frame.columns:
        if col == target:
            kinds[col] = TARGET
        elif col == id_column:
            kinds[col] = ID
        elif col in declared:
            kinds[col] = declared[col]
        elif col == date_column:
            kinds[col] = DATETIME
        else:
            kinds[col] = infer_kind(frame[col])
    return kinds


# ---- converters ------------------------------------------------------------------------------
def _via_categories(series: pd.Series, convert: Any) -> tuple[pd.Series, np.ndarray]:
    """Apply ``convert`` to the levels of a category column and spread the result by code."""
    cats = pd.Series(series.cat.categories)
    values, bad = convert(cats)
    codes = series.cat.codes.to_numpy()
    taken = values.to_numpy()[np.maximum(codes, 0)]
    out = pd.Series(taken, index=series.index, name=series.name, dtype=values.dtype)
    missing = codes < 0
    if missing.any():
        out[missing] = None
    return out, np.asarray(bad)[np.maximum(codes, 0)] & ~missing


def to_numeric(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """float64 values (NaN for missing) and a mask of values present but not a finite number.

    Examples
    --------
    >>> v, bad = to_numeric(pd.Series(["1", "x", None, "2.5"]))
    >>> v.tolist()[3], bad.tolist()
    (2.5, [False, True, False, False])
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        return _via_categories(series, to_numeric)
    present = series.notna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(series.dtype) or pd.api.types.is_timedelta64_dtype(series.dtype):
        values = pd.Series(np.full(len(series), np.nan), index=series.index, name=series.name)
        return values, present
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        values = pd.Series(series.to_numpy(dtype=np.float64, na_value=np.nan), index=series.index, name=series.name)
    else:
        values = pd.to_numeric(series, errors="coerce").astype(np.float64)
    arr = values.to_numpy()
    bad = present & ~np.isfinite(arr)
    if bad.any():
        arr = arr.copy()
        arr[bad] = np.nan
        values = pd.Series(arr, index=series.index, name=series.name)
    return values, bad


def to_datetime(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """``datetime64`` values (NaT for missing, time zones converted to UTC) and a mask of unparseable values.

    Strings must be ISO 8601 (``2024-05-31``, ``2024-05-31T12:00:00``); numbers are not dates.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        return _via_categories(series, to_datetime)
    present = series.notna().to_numpy()
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        values = series.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        values = series
    elif pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        values = pd.Series(pd.NaT, index=series.index, name=series.name, dtype="datetime64[ns]")
        return values, present
    else:
        s = series.astype("str") if series.dtype == object else series
        parsed = pd.to_datetime(s, format="ISO8601", errors="coerce", utc=True)
        values = parsed.dt.tz_localize(None)
    try:
        values = values.astype("datetime64[ns]")
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
        pass  # dates beyond the year 2262 keep a coarser unit
    bad = present & values.isna().to_numpy()
    return values, bad


def label_categories(series: pd.Series) -> pd.Series:
    """The column as a ``category`` column with string levels (see :func:`format_labels`)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = series.cat.categories
        if pd.api.types.is_string_dtype(cats.dtype) and not pd.api.types.is_object_dtype(cats.dtype):
            return series
        names = _format_scalars(pd.Series(cats))
        if names.is_unique and names.notna().all():
            out = pd.Categorical.from_codes(series.cat.codes.to_numpy(), categories=pd.Index(names, dtype="str"))
            return pd.Series(out, index=series.index, name=series.name)
        return series.astype("str").astype("category")
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return label_categories(series.astype("category"))
    return series.astype("str").astype("category")


def _format_scalars(values: pd.Series) -> pd.Series:
    """Strings for a few distinct values; whole floats print as integers."""
    if pd.api.types.is_float_dtype(values.dtype):
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(arr)
        if np.all(arr[finite] == np.round(arr[finite])) and (np.abs(arr[finite]) < 2 ** 53).all():
            return pd.Series(arr, index=values.index).astype("Int64").astype("str")
    return values.astype("str")


def format_labels(series: pd.Series) -> pd.Series:
    """Values as strings (missing stays missing); whole floats print as integers (``1.0`` -> ``"1"``).

    Examples
    --------
    >>> format_labels(pd.Series([1.0, None, 0.0])).tolist()
    ['1', nan, '0']
    """
    return label_categories(series).astype("str")


def to_categorical(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """A ``category`` column with string levels; nothing is unparseable."""
    return label_categories(series), np.zeros(len(series), dtype=bool)


def to_text(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """A ``str`` column; nothing is unparseable."""
    return format_labels(series), np.zeros(len(series), dtype=bool)


def convert(series: pd.Series, kind: str) -> tuple[pd.Series, np.ndarray]:
    """Convert ``series`` to the representation of ``kind``; return it and the unparseable-value mask.

    ``id`` and ``target`` columns are returned unchanged (targets are encoded by :mod:`engine.data.target`).
    """
    if kind == NUMERIC:
        return to_numeric(series)
    if kind == CATEGORICAL:
        return to_categorical(series)
    if kind == DATETIME:
        return to_datetime(series)
    if kind == TEXT:
        return to_text(series)
    return series, np.zeros(len(series), dtype=bool)


def describe_values(series: pd.Series, mask: np.ndarray, limit: int = 3) -> tuple[str, str]:
    """(``"'abc', 'x'"``, ``"3, 17, 20, ..."``): examples of the values under ``mask`` and their row numbers."""
    rows = np.flatnonzero(mask)
    examples = pd.unique(series.iloc[rows[:200]].astype("str"))[:limit]
    shown = ", ".join(repr(str(v)) for v in examples)
    nums = ", ".join(str(int(r)) for r in rows[:limit]) + (", ..." if len(rows) > limit else "")
    return shown, nums


def kind_phrase(kind: str) -> str:
    return {NUMERIC: "numeric values", DATETIME: "ISO 8601 dates (e.g. 2024-05-31)",
            CATEGORICAL: "categories", TEXT: "text"}.get(kind, kind)


def found_phrase(series: pd.Series) -> str:
    """How to describe what a column holds when it is the wrong type."""
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "dates"
    if pd.api.types.is_bool_dtype(dtype):
        return "true/false values"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numbers"
    return "text"
