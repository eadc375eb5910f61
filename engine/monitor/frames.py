"""Read the inputs of the drift library: frames, mappings of columns, matrices, chunks, Dask frames.

A *table* is one in-memory block of rows: a pandas or cuDF DataFrame, a mapping of column name to
1-D NumPy / CuPy array, or a 2-D NumPy / CuPy matrix of numeric columns. *Data* is a table, an
iterable of tables (chunks, read one at a time) or a Dask DataFrame (one table per partition).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from engine.errors import DataError

__all__ = ["Table", "as_table", "infer_columns", "is_dask", "iter_tables"]


def is_dask(obj: Any) -> bool:
    return type(obj).__module__.startswith("dask") and hasattr(obj, "to_delayed")


def _is_pandas(obj: Any) -> bool:
    import pandas as pd

    return isinstance(obj, pd.DataFrame)


def _is_cudf(obj: Any) -> bool:
    return type(obj).__module__.startswith("cudf") and hasattr(obj, "columns")


def _is_matrix(obj: Any) -> bool:
    return hasattr(obj, "ndim") and hasattr(obj, "dtype") and getattr(obj, "ndim", 0) == 2


def is_table(obj: Any) -> bool:
    return _is_pandas(obj) or _is_cudf(obj) or isinstance(obj, Mapping) or _is_matrix(obj)


class Table:
    """Uniform row-sliced access to one in-memory block of columns."""

    def __init__(self, obj: Any, matrix_names: list[str] | None = None) -> None:
        self.obj = obj
        self._dtypes: dict[str, Any] | None = None
        if _is_pandas(obj) or _is_cudf(obj):
            self.kind = "cudf" if _is_cudf(obj) else "pandas"
            self.names = [str(c) for c in obj.columns]
            self._by_name = {str(c): c for c in obj.columns}
            self._position = {str(c): i for i, c in enumerate(obj.columns)}
            self.n_rows = int(len(obj))
        elif isinstance(obj, Mapping):
            self.kind = "mapping"
            self.names = [str(k) for k in obj]
            self._by_name = {str(k): k for k in obj}
            lens = {int(len(v)) for v in obj.values()}
            if len(lens) > 1:
                raise DataError(f"columns have different lengths: {sorted(lens)}")
            self.n_rows = lens.pop() if lens else 0
        elif _is_matrix(obj):
            self.kind = "matrix"
            f = int(obj.shape[1])
            self.names = list(matrix_names) if matrix_names is not None else [f"x{j}" for j in range(f)]
            if len(self.names) != f:
                raise DataError(f"a {f}-column matrix was given for {len(self.names)} numeric features {self.names}")
            self._by_name = {n: j for j, n in enumerate(self.names)}
            self.n_rows = int(obj.shape[0])
        else:
            raise DataError(f"expected a DataFrame, a mapping of columns or a 2-D array, got {type(obj).__name__}")

    # ------------------------------------------------------------------ metadata
    def require(self, names: list[str], what: str) -> None:
        missing = [n for n in names if n not in self._by_name]
        if missing:
            raise DataError(f"{what} column(s) {missing} not found; the data has {self.names}")

    def dtype(self, name: str) -> Any:
        if self.kind in ("pandas", "cudf"):
            if self._dtypes is None:  # one lookup for all columns: a column access costs tens of microseconds
                self._dtypes = {str(c): dt for c, dt in zip(self.obj.columns, self.obj.dtypes)}
            return self._dtypes[name]
        if self.kind == "mapping":
            return self.obj[self._by_name[name]].dtype
        return self.obj.dtype

    @property
    def on_gpu(self) -> bool:
        if self.kind == "cudf":
            return True
        if self.kind == "matrix":
            return type(self.obj).__module__.startswith("cupy")
        if self.kind == "mapping":
            return any(type(v).__module__.startswith("cupy") for v in self.obj.values())
        return False

    @property
    def xp(self) -> Any:
        if self.on_gpu:
            import cupy

            return cupy
        return np

    # ------------------------------------------------------------------ data
    def numeric(self, names: list[str], start: int, stop: int) -> Any:
        """Rows ``start:stop`` of the numeric columns as one float32 / float64 matrix (NaN = missing).

        float32 when every column is float32, float64 otherwise. A matrix input in float32/float64
        is returned as a view.
        """
        dt = np.float32 if names and all(_is_float32(self.dtype(n)) for n in names) else np.float64
        if self.kind == "matrix":
            x = self.obj[start:stop]
            if x.dtype not in (np.float32, np.float64):
                x = x.astype(np.float64)
            idx = [self._by_name[n] for n in names]
            if idx != list(range(x.shape[1])):
                x = x[:, idx]
            return x
        if self.kind == "pandas":
            # by position: ``frame[labels]`` spends most of its time looking the labels up
            block = self.obj.take([self._position[n] for n in names], axis=1)
            if start != 0 or stop != self.n_rows:
                block = block.iloc[start:stop]
            try:
                return block.to_numpy(dtype=dt, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise DataError(f"numeric columns {names}: cannot be read as numbers ({exc})") from exc
        if self.kind == "cudf":
            cols = [self._by_name[n] for n in names]
            return self.obj[cols].iloc[start:stop].astype(dt).to_cupy(na_value=np.nan)
        xp = self.xp
        out = xp.empty((stop - start, len(names)), dtype=dt)
        for j, n in enumerate(names):
            out[:, j] = xp.asarray(self.obj[self._by_name[n]][start:stop], dtype=dt)
        return out

    def column(self, name: str, start: int, stop: int) -> Any:
        """Rows ``start:stop`` of one column (a pandas / cuDF Series or a 1-D array)."""
        key = self._by_name[name]
        if self.kind in ("pandas", "cudf"):
            return self.obj[key].iloc[start:stop]
        if self.kind == "mapping":
            return self.obj[key][start:stop]
        return self.obj[start:stop, key]

    def slices(self, chunk_rows: int) -> Iterator[tuple[int, int]]:
        step = max(1, int(chunk_rows))
        for a in range(0, self.n_rows, step):
            yield a, min(self.n_rows, a + step)


def _is_float32(dt: Any) -> bool:
    """A plain (NumPy) float32 column; extension dtypes such as ``Float32`` read as float64."""
    return isinstance(dt, np.dtype) and dt == np.float32


def as_table(obj: Any, matrix_names: list[str] | None = None) -> Table:
    return obj if isinstance(obj, Table) else Table(obj, matrix_names)


def iter_tables(data: Any, matrix_names: list[str] | None = None) -> Iterator[Table]:
    """The tables of in-memory data: the table itself, or each chunk of an iterable of tables."""
    if is_table(data):
        yield as_table(data, matrix_names)
        return
    if is_dask(data):
        raise DataError("a Dask DataFrame is read per partition, not as chunks")
    if not isinstance(data, Iterable) or isinstance(data, (str, bytes)):
        raise DataError(
            f"expected a DataFrame, a mapping of columns, a 2-D array, an iterable of those or a Dask DataFrame, got {type(data).__name__}"
        )
    for i, chunk in enumerate(data):
        if not is_table(chunk):
            raise DataError(f"chunk {i}: expected a DataFrame, a mapping of columns or a 2-D array, got {type(chunk).__name__}")
        yield as_table(chunk, matrix_names)


def _kind_of(dtype: Any) -> str:
    """numeric, categorical or skip for a column dtype (pandas, NumPy or cuDF)."""
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype) or str(dtype) == "category":
        return "categorical"
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "skip"
    return "categorical"


def infer_columns(
    table: Table, numeric: list[str] | None, categorical: list[str] | None
) -> tuple[list[str], list[str], dict[str, str]]:
    """Numeric and categorical columns (given ones kept, the rest inferred from dtypes) and skipped ones."""
    skipped: dict[str, str] = {}
    if numeric is not None:
        table.require(list(numeric), "numeric")
    if categorical is not None:
        table.require(list(categorical), "categorical")
    if table.kind == "matrix":
        return list(numeric) if numeric is not None else list(table.names), [], skipped
    given = set(numeric or []) | set(categorical or [])
    num = list(numeric) if numeric is not None else []
    cat = list(categorical) if categorical is not None else []
    for n in table.names:
        if n in given:
            continue
        kind = _kind_of(table.dtype(n))
        if kind == "numeric" and numeric is None:
            num.append(n)
        elif kind == "categorical" and categorical is None:
            cat.append(n)
        elif kind == "skip":
            skipped[n] = f"dtype {table.dtype(n)} is neither numeric nor categorical"
    overlap = set(num) & set(cat)
    if overlap:
        raise DataError(f"column(s) {sorted(overlap)} declared both numeric and categorical")
    return num, cat, skipped
