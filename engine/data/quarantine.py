"""Row-level contract failures: collect a reason per failed check, build the quarantine table, write it.

The quarantine table holds the failing rows exactly as they were read, preceded by two columns:
``_row`` (the row's 0-based position in the input, the first data row being 0) and ``_reason`` (every
check the row failed, separated by ``"; "``). It is written as ``quarantine.csv``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ROW = "_row"
REASON = "_reason"
FILENAME = "quarantine.csv"


class Reasons:
    """Boolean row masks, each with the reason text that explains it.

    Examples
    --------
    >>> r = Reasons(4)
    >>> r.add(np.array([True, False, False, True]), "age: below the allowed minimum 18")
    >>> r.add(np.array([True, False, False, False]), "id: duplicate")
    >>> rows, text = r.explain()
    >>> rows.tolist(), text.tolist()
    ([0, 3], ['age: below the allowed minimum 18; id: duplicate', 'age: below the allowed minimum 18'])
    """

    def __init__(self, rows: int) -> None:
        self.rows = int(rows)
        self._items: list[tuple[np.ndarray, str]] = []

    def add(self, mask: np.ndarray, reason: str) -> None:
        """Record that the rows under ``mask`` fail the check described by ``reason``."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.rows,):
            raise ValueError(f"mask has shape {mask.shape}, expected ({self.rows},)")
        if mask.any():
            self._items.append((mask, reason))

    def failed(self) -> np.ndarray:
        """Mask of rows that fail at least one check."""
        out = np.zeros(self.rows, dtype=bool)
        for mask, _ in self._items:
            out |= mask
        return out

    def counts(self) -> dict[str, int]:
        """Rows failing each check (a row failing two checks counts under both)."""
        out: dict[str, int] = {}
        for mask, reason in self._items:
            out[reason] = out.get(reason, 0) + int(mask.sum())
        return out

    def explain(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions of the failing rows, their reason strings), vectorised over the failing rows only."""
        failed = self.failed()
        rows = np.flatnonzero(failed)
        text = np.full(rows.size, "", dtype=object)
        for mask, reason in self._items:
            sub = mask[rows]
            text[sub] = text[sub] + ("; " + reason)
        if rows.size:
            text = pd.Series(text, dtype="str").str.slice(2).to_numpy(dtype=object)
        return rows, text


def quarantine_table(frame: pd.DataFrame, rows: np.ndarray, reasons: np.ndarray) -> pd.DataFrame:
    """The rows of ``frame`` at ``rows`` as read, with ``_row`` and ``_reason`` in front."""
    part = frame.iloc[rows].reset_index(drop=True)
    head = pd.DataFrame({ROW: np.asarray(rows, dtype=np.int64), REASON: pd.Series(reasons, dtype="str")})
    return pd.concat([head, part], axis=1)


def write_quarantine_csv(table: pd.DataFrame, path: str | Path) -> None:
    """Write the quarantine table as CSV (header only when no row was quarantined).

    pyarrow's writer is used when the columns convert to Arrow (much faster on large quarantines);
    columns of mixed Python objects fall back to pandas.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        arrow = pa.Table.from_pandas(table, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError):
        table.to_csv(path, index=False)
        return
    pacsv.write_csv(arrow, str(path))
