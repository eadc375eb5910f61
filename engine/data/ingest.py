"""Read the run's data: the synthetic generator, a CSV file, a Parquet file or a folder of Parquet partitions.

Files are read through pyarrow (multi-threaded CSV parser; ``pyarrow.dataset`` for Parquet, hive-style
``key=value`` partition folders becoming ``category`` columns) and handed on as a pandas DataFrame. Columns declared
``categorical``, ``text`` or ``id`` in ``data.dtypes`` are read as strings, so codes such as ``"007"``
keep their leading zeros. Every problem with the input names ``data.path`` and the file.
"""
from __future__ import annotations

import os
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
