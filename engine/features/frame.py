"""pandas frames -> the column arrays :mod:`engine.features.runtime` reads; column kinds from dtypes.

Strings are dictionary-encoded once here (pandas / pyarrow, in C) so that the runtime only maps each
distinct value; a column read only by the hashing encoder hands over its Arrow buffers untouched.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from engine.features.runtime import Encoded, StringColumn

#: Kinds a column can have; only the first three become features.
ALL_KINDS = ("numeric", "categorical", "datetime", "id", "text")
#: From this many rows on, two or more string columns are dictionary-encoded in parallel threads.
PARALLEL_ROWS = 100_000


def infer_kind(s: Any, id_min_rows: int = 100) -> str:
    """numeric | categorical | datetime | id from a pandas Series' dtype.

    Booleans and numbers are numeric; datetimes (with or without time zone) are datetime; strings,
    objects and categoricals are categorical, except a string column of at least ``id_min_rows`` rows
    whose every value is distinct, which is an id.
    """
    import pandas as pd
    from pandas.api import types as pt

    dt = s.dtype
    if pt.is_bool_dtype(dt) or (pt.is_numeric_dtype(dt) and not pt.is_complex_dtype(dt)):
        return "numeric"
    if pt.is_datetime64_any_dtype(dt):
        return "datetime"
    if isinstance(dt, pd.CategoricalDtype):
        return "categorical"
    n = len(s)
    if n < id_min_rows:
        return "categorical"
    head = s.iloc[: min(n, 1000)]
    if head.nunique(dropna=True) < len(head):  # a repeat early on: no need to hash the whole column
        return "categorical"
    return "id" if s.nunique(dropna=True) == n else "categorical"


def infer_kinds(df: Any, kinds: dict[str, str] | None = None, id_min_rows: int = 100) -> dict[str, str]:
    """Kind of every column: the declared one where ``kinds`` has it, else :func:`infer_kind`."""
    from engine.errors import ConfigError

    kinds = dict(kinds or {})
    out: dict[str, str] = {}
    for c in df.columns:
        k = kinds.get(c)
        if k is None:
            k = infer_kind(df[c], id_min_rows)
        k = str(getattr(k, "value", k))
        if k not in ALL_KINDS:
            raise ConfigError(f"kind of column {c!r}: expected one of {', '.join(ALL_KINDS)}, got {k!r}")
        out[c] = k
    return out


def _arrow_array(s: Any) -> Any:
    """The pyarrow string array behind a pyarrow-backed Series (no copy), or None for other storage."""
    import pandas as pd

    dt = s.dtype
    arrow_backed = (isinstance(dt, pd.StringDtype) and getattr(dt, "storage", "") == "pyarrow") or (
        isinstance(dt, pd.ArrowDtype) and str(dt.pyarrow_dtype) in ("string", "large_string", "utf8", "large_utf8"))
    if not arrow_backed:
        return None
    import pyarrow as pa

    arr = pa.array(s)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.type not in (pa.string(), pa.large_string()):
        arr = arr.cast(pa.large_string())
    return arr


def _arrow_strings(s: Any) -> StringColumn | None:
    """The Arrow buffers of a pyarrow-backed string Series (no copy), or None for other storage."""
    import pyarrow as pa

    arr = _arrow_array(s)
    if arr is None:
        return None
    _, off_buf, data_buf = arr.buffers()
    off_type = np.int64 if arr.type == pa.large_string() else np.int32
    offsets = np.frombuffer(off_buf, dtype=off_type)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, dtype=np.uint8)
    missing = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
    return StringColumn(data, offsets, missing)


def encode_series(s: Any) -> Encoded:
    """Dictionary-encode a Series once: the codes of a categorical, pyarrow's dictionary encoding of
    Arrow strings, else pandas' hash table."""
    import pandas as pd

    if isinstance(s.dtype, pd.CategoricalDtype):
        return Encoded(np.asarray(s.cat.codes.to_numpy()), np.asarray(s.cat.categories.to_numpy(), dtype=object))
    arr = _arrow_array(s)
    if arr is not None:
        import pyarrow.compute as pc

        d = pc.dictionary_encode(arr)
        # a missing value is a null index: -1, filled by Arrow (the dictionary holds no null entry, so the
        # runtime keeps these codes as they are instead of remapping every row)
        idx = d.indices.fill_null(-1) if d.indices.null_count else d.indices
        codes = idx.to_numpy(zero_copy_only=False)
        values = np.empty(len(d.dictionary), dtype=object)
        values[:] = d.dictionary.to_pylist()
        return Encoded(codes, values)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return Encoded(np.asarray(codes), np.asarray(uniques, dtype=object))


def numeric_array(s: Any) -> np.ndarray:
    """A numeric Series as a float array (NaN = missing); other dtypes pass through unchanged so the
    runtime reports them with the column's name."""
    from pandas.api import types as pt

    dt = s.dtype
    if isinstance(dt, np.dtype):
        if dt.kind == "f":
            return s.to_numpy()
        if dt.kind in "iub":
            return s.to_numpy().astype(np.float64)
        return s.to_numpy()
    if pt.is_bool_dtype(dt) or pt.is_numeric_dtype(dt):  # nullable / Arrow numbers
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    return s.to_numpy()


def datetime_values(s: Any) -> Any:
    """A datetime Series as datetime64 (UTC, naive); strings are dictionary-encoded for the runtime."""
    from pandas.api import types as pt

    dt = s.dtype
    if pt.is_datetime64_any_dtype(dt):
        if getattr(dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        # in the runtime's unit here, where it overlaps the string columns' encoding threads
        return s.to_numpy().astype("datetime64[ns]", copy=False)
    if dt == object or pt.is_string_dtype(dt):
        return encode_series(s)
    return s.to_numpy()


def to_columns(df: Any, kinds: dict[str, str], raw_strings: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """The runtime's input dict for the columns of ``kinds`` (column -> numeric|categorical|datetime).

    Columns named in ``raw_strings`` (read only by the hashing encoder) are handed over as Arrow
    buffers when their storage allows it.
    """
    from engine.errors import DataError

    missing = [c for c in kinds if c not in df.columns]
    if missing:
        raise DataError(f"missing input column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}; "
                        f"the feature pipeline reads: {', '.join(f'{c} ({k})' for c, k in kinds.items())}")
    for c, k in kinds.items():
        if k not in ("numeric", "categorical", "datetime"):
            raise DataError(f"column {c!r}: kind {k!r} does not enter the features")

    def convert(c: str) -> Any:
        s, k = df[c], kinds[c]
        if k == "numeric":
            return numeric_array(s)
        if k == "categorical":
            sc = _arrow_strings(s) if c in raw_strings else None
            return sc if sc is not None else encode_series(s)
        return datetime_values(s)

    encode = [c for c, k in kinds.items() if k == "categorical" and c not in raw_strings]
    if len(encode) < 2 or len(df) < PARALLEL_ROWS:
        return {c: convert(c) for c in kinds}
    # dictionary encoding (pyarrow) releases the GIL: the string columns are encoded side by side
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(encode), os.cpu_count() or 1)) as pool:
        pending = {c: pool.submit(convert, c) for c in encode}
        here = {c: convert(c) for c in kinds if c not in pending}  # the other columns meanwhile, on this thread
        return {c: pending[c].result() if c in pending else here[c] for c in kinds}
