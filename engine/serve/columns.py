"""Raw input columns as the served pipeline sees them: DataFrame <-> ``{column: 1-D array}`` <-> JSON.

Conventions shared by the client, the exporter's sample rows and the gates: numeric columns are
float64 with NaN for missing; categorical and datetime columns are object arrays of ``str`` with
``None`` for missing (datetimes as ISO-8601 strings). On the wire: numeric FP64/FP32 tensors,
BYTES tensors with an empty string for missing.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.errors import DataError


def _text_column(s: Any, kind: str) -> np.ndarray:
    """A Series -> object array of canonical text (``None`` = missing), as the feature runtime compares
    categories (``3.0`` is ``"3"``); datetimes as ISO-8601 text (UTC when time-zone aware)."""
    import pandas as pd
    from pandas.api import types as pt

    from engine.features.frame import encode_series
    from engine.features.runtime import canonical_category

    if kind == "datetime" and pt.is_datetime64_any_dtype(s.dtype):
        if getattr(s.dtype, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        values = s.to_numpy(dtype="datetime64[ns]")
        text = np.datetime_as_string(values, unit="auto").astype(object)
        text[pd.isna(values)] = None
        return text
    enc = encode_series(s)
    table = np.empty(len(enc.values) + 1, dtype=object)
    table[:-1] = [canonical_category(v) for v in enc.values.tolist()]
    table[-1] = None
    codes = np.asarray(enc.codes, dtype=np.int64)
    return table[np.where(codes < 0, len(enc.values), codes)]


def to_columns(frame: Any, specs: list[dict[str, str]]) -> dict[str, np.ndarray]:
    """``{column: array}`` for the columns named in ``specs`` (``[{"name", "kind"}]``): numeric float64
    (NaN = missing), categorical / datetime object arrays of ``str`` (``None`` = missing).

    Raises
    ------
    DataError
        When a column is missing or a numeric column holds text.
    """
    import pandas as pd

    from engine.features.frame import numeric_array

    if hasattr(frame, "to_pandas") and not isinstance(frame, pd.DataFrame):
        frame = frame.to_pandas()
    missing = [s["name"] for s in specs if s["name"] not in frame.columns]
    if missing:
        raise DataError(f"input is missing column(s) {', '.join(map(repr, missing))}; the model reads: "
                        + ", ".join(f"{s['name']} ({s['kind']})" for s in specs))
    out: dict[str, np.ndarray] = {}
    for s in specs:
        col = frame[s["name"]]
        if s["kind"] == "numeric":
            values = numeric_array(col)
            if values.dtype.kind not in "fiub":
                try:
                    values = pd.to_numeric(col, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
                except (TypeError, ValueError):
                    raise DataError(f"column {s['name']!r}: expected numbers, got {col.dtype}") from None
            out[s["name"]] = np.asarray(values, dtype=np.float64)
        else:
            out[s["name"]] = _text_column(col, s["kind"])
    return out


def to_json_rows(columns: dict[str, np.ndarray], specs: list[dict[str, str]], n: int | None = None) -> dict[str, Any]:
    """A JSON-able copy of (the first ``n`` rows of) ``columns``: ``{"columns": specs, "values": {...}}``."""
    values: dict[str, list[Any]] = {}
    for s in specs:
        a = columns[s["name"]][: n if n is not None else None]
        if s["kind"] == "numeric":
            values[s["name"]] = [None if (isinstance(v, float) and math.isnan(v)) else float(v) for v in a.tolist()]
        else:
            values[s["name"]] = [None if v is None else str(v) for v in a.tolist()]
    return {"columns": [{"name": s["name"], "kind": s["kind"]} for s in specs], "values": values}


def from_json_rows(data: dict[str, Any]) -> dict[str, np.ndarray]:
    """Inverse of :func:`to_json_rows`."""
    out: dict[str, np.ndarray] = {}
    for s in data["columns"]:
        v = data["values"][s["name"]]
        if s["kind"] == "numeric":
            out[s["name"]] = np.array([np.nan if x is None else x for x in v], dtype=np.float64)
        else:
            out[s["name"]] = np.array(v, dtype=object)
    return out


def n_rows(columns: dict[str, np.ndarray]) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def take(columns: dict[str, np.ndarray], index: Any) -> dict[str, np.ndarray]:
    return {c: a[index] for c, a in columns.items()}
