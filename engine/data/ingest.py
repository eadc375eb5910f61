"""Read the run's data: the synthetic generator, a CSV file, a Parquet file or a folder of Parquet partitions.

Files are read through pyarrow (multi-threaded CSV parser; ``pyarrow.dataset`` for Parquet, hive-style
``key=value`` partition folders becoming ``category`` columns) and handed on as a pandas DataFrame. Columns declared
``categorical``, ``text`` or ``id`` in ``data.dtypes`` are read as strings, so codes such as ``"007"``
keep their leading zeros. Every problem with the input names ``data.path`` and the file.
:func:`iter_frames` streams chosen columns of the same kinds of files in frames of a bounded number of
rows, for commands that read data larger than memory (``trident monitor``, ``trident predict``).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from engine.data.kinds import CATEGORICAL, ID, TEXT, check_declared
from engine.errors import ConfigError, DataError

#: Strings read as missing values in CSV files (besides the empty string).
NULL_VALUES = ["", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "#N/A", "-NaN", "-nan"]
_STRING_KINDS = (CATEGORICAL, TEXT, ID)


def _value(x: Any) -> Any:
    return getattr(x, "value", x)


def source_of(data_cfg: Any) -> str:
    return str(_value(data_cfg.source))


def resolve_path(data_cfg: Any) -> Path:
    """``data.path`` as a Path; a file source without one is a configuration error."""
    source = source_of(data_cfg)
    path = getattr(data_cfg, "path", None)
    if path is None or str(path).strip() == "":
        raise ConfigError(f"data.path: required for data.source={source}")
    p = Path(os.path.expanduser(str(path)))
    if not p.is_absolute() and not p.exists():
        # conf/ options such as data=credit name paths relative to the project; try there too
        from engine.registry.provenance import PROJECT_ROOT

        if (PROJECT_ROOT / p).exists():
            return PROJECT_ROOT / p
    return p


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _finish(table: Any, path: Path, drop: list[str]) -> pd.DataFrame:
    """Arrow table -> pandas with checked column names and ``data.drop`` applied."""
    names = [str(c) for c in table.column_names]
    renamed = [c if c.strip() else f"unnamed_{i}" for i, c in enumerate(names)]
    seen: set[str] = set()
    for c in renamed:
        if c in seen:
            raise DataError(f"data.path: column {c!r} appears more than once in the header of '{path}'")
        seen.add(c)
    if renamed != names:
        table = table.rename_columns(renamed)
    for c in drop:
        if c not in seen:
            raise DataError(f"data.drop: column {c!r} not in the data; columns are: {', '.join(renamed)}")
    if drop:
        table = table.drop_columns(list(drop))
    if table.num_rows == 0:
        raise DataError(f"data.path: '{path}' has a header but no data rows")
    return table.to_pandas(date_as_object=False)


def read_csv(path: str | os.PathLike, declared: dict[str, str] | None = None,
             drop: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV file (header row, comma-separated) into pandas through pyarrow.

    Raises
    ------
    DataError
        The file is missing, a folder, empty, header-only or not parseable as CSV.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    p = Path(path)
    _check_file(p, "CSV")
    if p.is_dir():
        raise DataError(f"data.path: '{p}' is a folder; data.source=csv expects one CSV file "
                        "(use data.source=parquet for a folder of Parquet files)")
    if p.stat().st_size == 0:
        raise DataError(f"data.path: '{p}' is empty (0 bytes); expected a CSV file with a header row and data")
    declared = check_declared(declared)
    types = {c: pa.string() for c, k in declared.items() if k in _STRING_KINDS}
    convert = pacsv.ConvertOptions(null_values=NULL_VALUES, strings_can_be_null=True, column_types=types)
    try:
        table = pacsv.read_csv(p, convert_options=convert)
    except pa.ArrowInvalid as exc:
        msg = _first_line(exc)
        if "Empty CSV file" in msg:
            raise DataError(f"data.path: '{p}' is empty; expected a CSV file with a header row and data") from exc
        raise DataError(f"data.path: cannot read '{p}' as CSV: {msg}") from exc
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"data.path: cannot read '{p}': {_first_line(exc)}") from exc
    return _finish(table, p, list(drop or []))


def read_parquet(path: str | os.PathLike, declared: dict[str, str] | None = None,
                 drop: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file or a folder of Parquet files (hive partitions allowed) into pandas.

    Raises
    ------
    DataError
        The path is missing, holds no Parquet files, or a file is not valid Parquet.
    """
    import pyarrow as pa
    import pyarrow.dataset as pads

    p = Path(path)
    _check_file(p, "Parquet")
    if p.is_file() and p.stat().st_size == 0:
        raise DataError(f"data.path: '{p}' is empty (0 bytes); expected a Parquet file")
    if p.is_dir() and not any(q.is_file() and not q.name.startswith((".", "_")) for q in p.rglob("*")):
        raise DataError(f"data.path: folder '{p}' holds no Parquet files")
    check_declared(declared)
    try:
        ds = pads.dataset(p, format="parquet", partitioning="hive")
        table = ds.to_table()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"data.path: cannot read '{p}' as Parquet: {_first_line(exc)}") from exc
    return _finish(table, p, list(drop or []))


def _check_file(p: Path, what: str) -> None:
    if not p.exists():
        raise DataError(f"data.path: '{p}' does not exist (expected a {what} file"
                        + (" or folder" if what == "Parquet" else "") + f"; looked in '{p.resolve()}')")
    if not os.access(p, os.R_OK):
        raise DataError(f"data.path: cannot read '{p}': permission denied")


def read_table(data_cfg: Any) -> pd.DataFrame:
    """The frame described by the ``data`` config group (synthetic, csv or parquet), as read.

    Examples
    --------
    >>> from engine.config.base import DataConfig
    >>> read_table(DataConfig(rows=100)).shape
    (100, 22)
    """
    source = source_of(data_cfg)
    declared = dict(getattr(data_cfg, "dtypes", None) or {})
    drop = [str(c) for c in (getattr(data_cfg, "drop", None) or [])]
    if source == "synthetic":
        from engine.data.synthetic import make_credit

        rows = int(data_cfg.rows)
        if rows < 2:
            raise ConfigError(f"data.rows: expected at least 2 rows, got {rows}")
        check_declared(declared)
        frame = make_credit(rows, int(data_cfg.seed), drifted=bool(data_cfg.drifted))
        missing = [c for c in drop if c not in frame.columns]
        if missing:
            raise DataError(f"data.drop: column {missing[0]!r} not in the data; columns are: "
                            f"{', '.join(frame.columns)}")
        return frame.drop(columns=drop) if drop else frame
    if source == "csv":
        return read_csv(resolve_path(data_cfg), declared, drop)
    if source == "parquet":
        return read_parquet(resolve_path(data_cfg), declared, drop)
    raise ConfigError(f"data.source: expected synthetic, csv or parquet; got {source!r}")


# ------------------------------------------------------------------------------------------ streaming
#: Bytes of CSV text parsed at a time by :func:`iter_frames` (a block holds whole rows).
CSV_BLOCK_BYTES = 16 << 20


def csv_header(path: str | os.PathLike) -> list[str]:
    """The column names in a CSV file's header row (read without parsing the rest)."""
    import csv

    p = Path(path)
    _check_file(p, "CSV")
    with open(p, newline="", encoding="utf-8-sig", errors="replace") as fh:
        return next(csv.reader(fh), [])


def iter_frames(path: str | os.PathLike, columns: list[str] | None = None, types: dict[str, Any] | None = None,
                batch_rows: int = 1_000_000, block_bytes: int = CSV_BLOCK_BYTES) -> Iterator[pd.DataFrame]:
    """Stream ``columns`` (default: all) of a CSV file, a Parquet file or a folder of Parquet files as pandas frames of
    ``batch_rows`` rows (the last one fewer), so a file larger than memory can be read: at most one CSV
    block (``block_bytes``) or Parquet batch and one frame are in memory at a time.

    ``types`` maps a column to the pyarrow type it is read as (CSV only; Parquet files carry their own);
    a CSV column without one has its type inferred block by block, so give one wherever every chunk
    must agree (a value that does not parse as its column's type is then an error).
    Missing values are read as in :func:`read_csv`. The path and the columns are checked at once; the
    file is read as the frames are consumed.

    Raises
    ------
    DataError
        The path is missing, empty or unreadable, a named column is not in the data (all of them are
        named), the file has no data rows, or a value does not parse as the type given for its column.
    """
    import pyarrow as pa

    p = Path(path)
    is_parquet = p.is_dir() or p.suffix.lower() in (".parquet", ".pq")
    _check_file(p, "Parquet" if is_parquet else "CSV")
    if batch_rows < 1:
        raise DataError(f"batch_rows: expected at least 1, got {batch_rows}")
    try:
        if is_parquet:
            import pyarrow.dataset as pads

            if p.is_file() and p.stat().st_size == 0:
                raise DataError(f"'{p}' is empty (0 bytes); expected a Parquet file")
            ds = pads.dataset(p, format="parquet", partitioning="hive")
            columns = _require(columns, ds.schema.names, p)
            batches = ds.to_batches(columns=columns, batch_size=batch_rows)
        else:
            import pyarrow.csv as pacsv

            if p.is_dir():
                raise DataError(f"'{p}' is a folder; expected a CSV file or Parquet")
            if p.stat().st_size == 0:
                raise DataError(f"'{p}' is empty (0 bytes); expected a CSV file with a header row and data")
            columns = _require(columns, csv_header(p), p)
            convert = pacsv.ConvertOptions(null_values=NULL_VALUES, strings_can_be_null=True,
                                           column_types=dict(types or {}), include_columns=columns)
            batches = _csv_blocks(p, int(block_bytes), convert)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read '{p}': {_first_line(exc)}") from exc
    return _joined(batches, batch_rows, p)


def _csv_blocks(path: Path, block_bytes: int, convert: Any) -> Iterator[Any]:
    """Record batches of a CSV file parsed ``block_bytes`` of text at a time, each block cut at a line end
    and parsed with the header by pyarrow's multi-threaded reader. (pyarrow's own streaming reader parses
    on one thread and reads ahead of its consumer, holding hundreds of MB for a large file.) Like pyarrow
    by default, values may not hold line breaks."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open(path, "rb") as fh:
        header = fh.readline()
        while True:
            block = fh.read(block_bytes)
            if not block:
                return
            if not block.endswith(b"\n"):
                block += fh.readline()  # to the end of the last row
            if not block.strip():
                continue
            yield from pacsv.read_csv(pa.py_buffer(header + block), convert_options=convert).to_batches()


def _joined(batches: Iterator[Any], batch_rows: int, path: Path) -> Iterator[pd.DataFrame]:
    """Record batches re-cut into pandas frames of ``batch_rows`` rows (the last one fewer)."""
    import pyarrow as pa

    pending: list[Any] = []
    rows = seen = 0
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            pending.append(batch)
            rows += batch.num_rows
            if rows < batch_rows:
                continue
            table = pa.Table.from_batches(pending)
            start = 0
            while rows - start >= batch_rows:
                seen += batch_rows
                yield table.slice(start, batch_rows).to_pandas(date_as_object=False)
                start += batch_rows
            pending = table.slice(start).to_batches() if start < rows else []
            rows -= start
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read '{path}': {_first_line(exc)}") from exc
    if rows:
        seen += rows
        yield pa.Table.from_batches(pending).to_pandas(date_as_object=False)
    if not seen:
        raise DataError(f"'{path}' has a header but no data rows")


def _require(columns: list[str] | None, present: list[str], path: Path) -> list[str]:
    """``columns`` (all of ``present`` when None), each checked to be there."""
    if columns is None:
        return list(present)
    missing = [c for c in columns if c not in set(present)]
    if missing:
        raise DataError(f"'{path}': column(s) {', '.join(missing)} not found; the data has {', '.join(present)}")
    return list(columns)
