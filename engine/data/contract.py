"""The data contract: what training data looked like, and a check of any data against it.

:func:`infer_contract` records, per column, its kind and source dtype, the allowed range of a numeric
column (the observed range widened by ``range_margin`` of its span, never across zero), the allowed
levels of a categorical column with at most ``max_categories`` levels (wider columns get no
allow-list), the observed null rate with an allowed maximum (observed + ``null_rate_margin``), whether
nulls are allowed at all (they were seen), the uniqueness of an id column, and the target's labels.

:func:`check` compares a frame with a contract. Dataset-level failures raise :class:`DataError` naming
the column and what was expected: no rows, a missing column, an extra column (unless
``extra_columns="drop"``), a column of the wrong type (more than ``max_unparseable_share`` of its values
do not parse), an entirely empty column, a missing or constant target. Row-level failures (a value out
of range, a category not allowed, a null where none is allowed, a duplicate or missing id, a value that
does not parse, a missing or unknown target label) send the row to quarantine with its reasons; the
other rows are accepted, converted to the representation of their kind. Rows in = rows accepted + rows
quarantined, always.

Extra columns default to an error: a column the training data did not have usually means a changed
schema upstream, which a person should look at; ``extra_columns="drop"`` drops them with a warning.
Dates are recorded with their range but not range-checked: later data is expected to be later.
"""
from __future__ import annotations

import datetime as _dt
import difflib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.data import kinds as K
from engine.data.quarantine import Reasons, quarantine_table
from engine.data.target import BINARY, TargetSpec, describe_target, encode_target
from engine.errors import DataError

FORMAT_VERSION = 1
EXTRA_COLUMNS = ("error", "drop")


@dataclass
class ColumnContract:
    """What one column must look like."""

    name: str
    kind: str
    #: dtype of the column as read (informational).
    dtype: str
    nullable: bool
    null_rate: float
    max_null_rate: float
    #: numeric: allowed range (widened); datetime: observed range as ISO strings (not enforced).
    min: float | str | None = None
    max: float | str | None = None
    observed_min: float | str | None = None
    observed_max: float | str | None = None
    #: categorical: the allowed levels (None when the column has more than max_categories levels).
    categories: list[str] | None = None
    n_categories: int | None = None
    unique: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "name"}


@dataclass
class Contract:
    """A data contract inferred from training data (see the module docstring)."""

    columns: dict[str, ColumnContract]
    target: TargetSpec
    id_column: str | None = None
    rows: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def kinds(self) -> dict[str, str]:
        return {name: c.kind for name, c in self.columns.items()}

    @property
    def task(self) -> str:
        return self.target.task

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": self.format_version, "created": self.created, "rows": self.rows,
                "id_column": self.id_column, "target": self.target.to_dict(), "settings": dict(self.settings),
                "columns": {name: c.to_dict() for name, c in self.columns.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "contract") -> "Contract":
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise DataError(f"{source}: contract format_version {version!r} is not supported "
                            f"(this version of Trident reads format_version {FORMAT_VERSION})")
        try:
            columns = {name: ColumnContract(name=name, **spec) for name, spec in d["columns"].items()}
            target = TargetSpec.from_dict(d["target"])
        except (KeyError, TypeError) as exc:
            raise DataError(f"{source}: not a valid data contract ({exc})") from exc
        return cls(columns=columns, target=target, id_column=d.get("id_column"), rows=int(d.get("rows", 0)),
                   settings=dict(d.get("settings") or {}), created=str(d.get("created", "")),
                   format_version=version)

    def save(self, path: str | Path) -> Path:
        from engine.atomic import write_json

        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Contract":
        """Read a contract saved by :meth:`save`.

        Raises
        ------
        DataError
            The file is missing, is not JSON or is not a contract of a readable format version.
        """
        p = Path(path)
        if not p.is_file():
            raise DataError(f"validation.contract: file '{p}' does not exist")
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"validation.contract: cannot read '{p}' as JSON ({exc})") from exc
        if not isinstance(d, dict):
            raise DataError(f"validation.contract: '{p}' is not a data contract (expected a JSON object)")
        return cls.from_dict(d, source=f"validation.contract '{p}'")


@dataclass
class CheckResult:
    """The outcome of :func:`check`."""

    #: Accepted rows, converted to their kinds' representation, index 0..n-1.
    accepted: pd.DataFrame
    #: Quarantined rows as read, with ``_row`` and ``_reason`` in front.
    quarantine: pd.DataFrame
    rows_in: int
    #: 0-based input positions of the accepted rows.
    accepted_rows: np.ndarray
    #: Encoded target of the accepted rows (None when the data has no target column).
    y: np.ndarray | None
    #: reason -> number of rows failing that check.
    reasons: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    dropped_columns: list[str] = field(default_factory=list)

    @property
    def rows_accepted(self) -> int:
        return int(len(self.accepted))

    @property
    def rows_quarantined(self) -> int:
        return int(len(self.quarantine))

    @property
    def quarantine_share(self) -> float:
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0

    def summary(self) -> dict[str, Any]:
        return {"rows_in": self.rows_in, "rows_accepted": self.rows_accepted,
                "rows_quarantined": self.rows_quarantined, "quarantine_share": round(self.quarantine_share, 6),
                "reasons": dict(self.reasons), "warnings": list(self.warnings),
                "dropped_columns": list(self.dropped_columns)}


# ---- helpers ---------------------------------------------------------------------------------
def _names(cols: Any, limit: int = 20) -> str:
    cols = [str(c) for c in cols]
    shown = ", ".join(cols[:limit])
    return shown + (f", ... ({len(cols)} in all)" if len(cols) > limit else "")


def _suggest(name: str, cols: Any) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in cols], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def missing_column_message(key: str, name: str, cols: Any) -> str:
    """``"data.target: column 'Statu' not in the data; columns are: ... (did you mean 'Status'?)"``."""
    hint = " (set data.target to the column to predict)" if key == "data.target" else ""
    return f"{key}: column {name!r} not in the data; columns are: {_names(cols)}{_suggest(name, cols)}{hint}"


def _num(v: float) -> float | int:
    v = float(v)
    return int(v) if v.is_integer() and abs(v) < 2 ** 53 else v


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _wrong_type(name: str, kind: str, raw: pd.Series, bad: np.ndarray) -> DataError:
    examples, rows = K.describe_values(raw, bad)
    found = K.found_phrase(raw)
    share = bad.sum() / max(int(raw.notna().sum()), 1)
    return DataError(f"column {name!r}: expected {K.kind_phrase(kind)}, found {found} such as {examples} "
                     f"(rows {rows}; {share:.0%} of its values)")


def _convert_checked(name: str, kind: str, raw: pd.Series, max_unparseable_share: float
                     ) -> tuple[pd.Series, np.ndarray]:
    values, bad = K.convert(raw, kind)
    n_bad = int(bad.sum())
    if n_bad:
        present = int(raw.notna().sum())
        if n_bad == present or n_bad > max_unparseable_share * present:
            raise _wrong_type(name, kind, raw, bad)
    return values, bad


def _all_null(name: str, n: int) -> DataError:
    return DataError(f"column {name!r} is entirely empty (all {n:,} values are missing); expected values "
                     "(drop the column with data.drop=[...] if it is not needed)")


def _iso(v: Any) -> str | None:
    return None if pd.isna(v) else pd.Timestamp(v).isoformat()


# ---- inference -------------------------------------------------------------------------------
def infer_contract(frame: pd.DataFrame, kinds: dict[str, str], target: str, id_column: str | None = None, *,
                   task: str = BINARY, positive_label: str | None = None, max_categories: int = 50,
                   range_margin: float = 0.1, null_rate_margin: float = 0.05,
                   max_unparseable_share: float = 0.05) -> Contract:
    """Infer a contract from (training) data.

    Parameters
    ----------
    frame : pandas.DataFrame
        The data as read.
    kinds : dict
        ``{column: kind}`` from :func:`engine.data.kinds.infer_kinds`.
    target : str
        The target column.
    id_column : str, optional
        A declared row identifier; the contract requires it to be unique.
    task : {"binary", "regression"}
    positive_label : str, optional
        The positive label of a binary target (see :mod:`engine.data.target`).
    max_categories : int
        Categoricals with at most this many levels get an allow-list.
    range_margin : float
        Numeric ranges are widened by this share of the observed span on each side.
    null_rate_margin : float
        Allowed null rate = observed + this.
    max_unparseable_share : float
        A column whose declared kind fails to parse on more than this share of its values is the wrong type.

    Raises
    ------
    DataError
        No rows, target missing or constant, a column entirely empty or of the wrong type.

    Examples
    --------
    >>> df = pd.DataFrame({"x": [1.0, 2.0, None], "y": ["a", "b", "a"]})
    >>> c = infer_contract(df, {"x": "numeric", "y": "target"}, "y")
    >>> c.columns["x"].nullable, c.target.positive_label
    (True, 'b')
    """
    n = len(frame)
    if n == 0:
        raise DataError("data: no rows to learn a contract from")
    if target not in frame.columns:
        raise DataError(missing_column_message("data.target", target, frame.columns))
    columns: dict[str, ColumnContract] = {}
    spec = describe_target(frame[target], task, positive_label)
    for name in frame.columns:
        name = str(name)
        raw = frame[name]
        kind = kinds.get(name) or K.infer_kind(raw)
        nulls = int(raw.isna().sum())
        if nulls == n and kind != K.TARGET:
            raise _all_null(name, n)
        values, bad = _convert_checked(name, kind, raw, max_unparseable_share)
        null_rate = nulls / n
        col = ColumnContract(name=name, kind=kind, dtype=str(raw.dtype), nullable=nulls > 0,
                             null_rate=round(null_rate, 6),
                             max_null_rate=round(min(1.0, null_rate + null_rate_margin), 6))
        if kind == K.NUMERIC:
            v = values.to_numpy()
            v = v[np.isfinite(v)]
            lo, hi = float(v.min()), float(v.max())
            pad = range_margin * (hi - lo)
            col.observed_min, col.observed_max = _num(lo), _num(hi)
            col.min = _num(max(lo - pad, 0.0) if lo >= 0 else lo - pad)
            col.max = _num(min(hi + pad, 0.0) if hi <= 0 else hi + pad)
        elif kind == K.CATEGORICAL:
            levels = values.dropna().unique()
            col.n_categories = int(len(levels))
            if len(levels) <= max_categories:
                col.categories = sorted(str(x) for x in levels)
        elif kind == K.DATETIME:
            col.observed_min, col.observed_max = _iso(values.min()), _iso(values.max())
        elif kind == K.ID:
            col.nullable = False
            col.max_null_rate = 0.0
            col.unique = True
        elif kind == K.TARGET:
            col.nullable = False
            col.max_null_rate = 0.0
            if spec.task == BINARY:
                col.categories = spec.labels
                col.n_categories = 2
        columns[name] = col
    settings = {"max_categories": int(max_categories), "range_margin": float(range_margin),
                "null_rate_margin": float(null_rate_margin)}
    return Contract(columns=columns, target=spec, id_column=id_column, rows=n, settings=settings,
                    created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


# ---- checking --------------------------------------------------------------------------------
def check(contract: Contract, frame: pd.DataFrame, *, extra_columns: str = "error",
          max_unparseable_share: float = 0.05, require_target: bool = True,
          row_checks: bool = True) -> CheckResult:
    """Check ``frame`` against ``contract``; quarantine failing rows, accept the rest.

    Parameters
    ----------
    contract : Contract
    frame : pandas.DataFrame
        Data as read (e.g. by :func:`engine.data.ingest.read_table`).
    extra_columns : {"error", "drop"}
        What to do with columns the contract does not know.
    max_unparseable_share : float
        Above this share of unparseable values a column is the wrong type (dataset-level); at or below
        it, the rows holding them are quarantined.
    require_target : bool
        Whether the target column must be present (False for unlabelled data, e.g. scoring).
    row_checks : bool
        False skips the row-level checks except those on the target (rows without a valid target can
        never be used); values that do not parse become missing.

    Raises
    ------
    DataError
        A dataset-level failure, naming the column and what was expected.
    """
    if extra_columns not in EXTRA_COLUMNS:
        raise ValueError(f"extra_columns must be one of {EXTRA_COLUMNS}, got {extra_columns!r}")
    n = len(frame)
    if n == 0:
        raise DataError("data: no rows (the input has a header but no data)")
    target = contract.target.column
    expected = [c for c in contract.columns if c != target or require_target]
    present = {str(c) for c in frame.columns}
    for name in expected:
        if name not in present:
            key = "data.target" if name == target else "data"
            raise DataError(f"{key}: column {name!r} is in the data contract but not in the data; "
                            f"columns are: {_names(frame.columns)}{_suggest(name, frame.columns)}")
    extras = [str(c) for c in frame.columns if str(c) not in contract.columns]
    warnings: list[str] = []
    if extras and extra_columns == "error":
        raise DataError(f"column {extras[0]!r} is not in the data contract (expected columns: "
                        f"{_names(contract.columns)}); remove it or set validation.extra_columns=drop"
                        + (f" ({len(extras)} extra columns: {_names(extras)})" if len(extras) > 1 else ""))
    if extras:
        warnings.append(f"dropped {len(extras)} column(s) not in the data contract: {_names(extras)}")

    reasons = Reasons(n)
    converted: dict[str, pd.Series] = {}
    y = None
    for name, col in contract.columns.items():
        if name not in present:
            continue  # an absent target with require_target=False
        raw = frame[name]
        isnull = raw.isna().to_numpy()
        n_null = int(isnull.sum())
        if n_null == n:
            if col.kind == K.TARGET:
                raise DataError(f"data.target: column {name!r} has no values (all {n:,} rows are missing)")
            raise _all_null(name, n)
        if n_null / n > col.max_null_rate and col.nullable:
            warnings.append(f"column {name!r}: {n_null / n:.1%} of values are missing; the contract allows "
                            f"at most {col.max_null_rate:.1%}")
        if col.kind == K.TARGET:
            y, invalid = encode_target(raw, contract.target)
            reasons.add(isnull, f"{name}: target is missing")
            if contract.target.task == BINARY:
                reasons.add(invalid & ~isnull, f"{name}: target label not one of "
                                               f"{', '.join(repr(x) for x in contract.target.labels)}")
            else:
                reasons.add(invalid & ~isnull, f"{name}: target is not a number")
            converted[name] = raw
            continue
        values, bad = _convert_checked(name, col.kind, raw, max_unparseable_share)
        converted[name] = values
        if not row_checks:
            continue
        reasons.add(bad, f"{name}: {'not a finite number' if col.kind == K.NUMERIC else 'not a valid date'}")
        if not col.nullable:
            reasons.add(isnull, f"{name}: missing value (the contract allows none)")
        if col.kind == K.NUMERIC and col.min is not None:
            v = values.to_numpy()
            with np.errstate(invalid="ignore"):
                reasons.add(v < float(col.min), f"{name}: below the allowed minimum {_fmt(col.min)}")
                reasons.add(v > float(col.max), f"{name}: above the allowed maximum {_fmt(col.max)}")
        elif col.kind == K.CATEGORICAL and col.categories is not None:
            allowed = values.isin(col.categories).to_numpy(dtype=bool)
            reasons.add(~allowed & ~isnull, f"{name}: category not in the contract's {len(col.categories)} levels")
        elif col.kind == K.ID:
            dup = raw.duplicated(keep="first").to_numpy() & ~isnull
            reasons.add(dup, f"{name}: duplicate id (an earlier row has the same value)")

    rows, text = reasons.explain()
    keep = np.ones(n, dtype=bool)
    keep[rows] = False
    kept = np.flatnonzero(keep)
    all_kept = kept.size == n
    order = [c for c in contract.columns if c in converted]
    # concat (not the dict constructor) keeps one block per column: no copy into consolidated blocks
    accepted = pd.concat([converted[c].rename(c) for c in order], axis=1)
    if not all_kept:
        accepted = accepted.iloc[kept]
    accepted = accepted.reset_index(drop=True)
    quarantined = quarantine_table(frame, rows, text)
    assert len(accepted) + len(quarantined) == n, "rows in must equal rows accepted + rows quarantined"
    if y is not None:
        y = y if all_kept else y[kept]
        if len(y) and require_target:
            _check_target_varies(contract.target, y, int(n - len(y)))
    return CheckResult(accepted=accepted, quarantine=quarantined, rows_in=n, accepted_rows=kept, y=y,
                       reasons=reasons.counts(), warnings=warnings, dropped_columns=extras)


def _check_target_varies(spec: TargetSpec, y: np.ndarray, quarantined: int) -> None:
    if spec.task == BINARY:
        if y.min() == y.max():
            label = spec.positive_label if y[0] == 1 else spec.negative_label
            after = f" after quarantining {quarantined:,} rows" if quarantined else ""
            raise DataError(f"data.target: column {spec.column!r} is constant ({label!r} in all {len(y):,} "
                            f"accepted rows{after}); a binary target needs two classes")
    elif np.nanmin(y) == np.nanmax(y):
        raise DataError(f"data.target: column {spec.column!r} is constant ({y[0]:g} in every accepted row); "
                        "a model needs a target that varies")
