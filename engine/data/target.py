"""The target column: which label is positive for a binary task, and its encoding as numbers.

A binary target may be given as labels (``good``/``bad``, ``no``/``yes``, ``0``/``1``, ``False``/``True``).
The positive label (encoded 1) is ``data.positive_label`` when set; otherwise ``1`` against ``0`` or ``-1``,
``true``, ``yes``, ``bad``, ``default`` and similar words when exactly one label is such a word, else
the minority label. A regression target is numeric (float64).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.data.kinds import label_categories, to_numeric
from engine.errors import DataError

BINARY = "binary"
REGRESSION = "regression"

#: Labels that mean "the event happened" (compared lower-case).
POSITIVE_WORDS = ("true", "yes", "y", "t", "bad", "default", "defaulted", "positive", "pos", "fraud",
                  "churn", "churned", "fail", "failed", "event")


@dataclass
class TargetSpec:
    """What the target means: its task, labels and which label is encoded as 1."""

    column: str
    task: str
    positive_label: str | None = None
    negative_label: str | None = None
    #: How the positive label was chosen: "declared", "rule" or "minority".
    rule: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [lbl for lbl in (self.negative_label, self.positive_label) if lbl is not None]

    def mapping(self) -> dict[str, int]:
        return {self.negative_label: 0, self.positive_label: 1} if self.task == BINARY else {}

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "task": self.task, "positive_label": self.positive_label,
                "negative_label": self.negative_label, "rule": self.rule, "mapping": self.mapping(),
                "counts": dict(self.counts)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TargetSpec":
        return cls(column=d["column"], task=d["task"], positive_label=d.get("positive_label"),
                   negative_label=d.get("negative_label"), rule=d.get("rule"), counts=dict(d.get("counts") or {}))


def choose_positive(counts: dict[str, int], declared: str | None = None, column: str = "target") -> tuple[str, str]:
    """(positive label, rule) among the two labels in ``counts`` (label -> rows).

    Examples
    --------
    >>> choose_positive({"good": 3200, "bad": 1254})
    ('bad', 'rule')
    >>> choose_positive({"0": 80, "1": 20})
    ('1', 'rule')
    >>> choose_positive({"A": 80, "B": 20})
    ('B', 'minority')
    """
    labels = list(counts)
    if declared is not None:
        d = str(declared)
        for lbl in labels:
            if lbl == d:
                return lbl, "declared"
        for lbl in labels:
            if lbl.strip().lower() == d.strip().lower():
                return lbl, "declared"
        raise DataError(f"data.positive_label: {d!r} is not a value of column {column!r} "
                        f"(its values are {', '.join(repr(x) for x in labels)})")
    low = {lbl: lbl.strip().lower() for lbl in labels}
    values = set(low.values())
    if values in ({"0", "1"}, {"-1", "1"}):
        return next(lbl for lbl in labels if low[lbl] == "1"), "rule"
    words = [lbl for lbl in labels if low[lbl] in POSITIVE_WORDS]
    if len(words) == 1:
        return words[0], "rule"
    # the minority label; a tie goes to the label that sorts last
    return sorted(labels, key=lambda lbl: (-counts[lbl], lbl))[-1], "minority"


def _preview(values: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def describe_target(series: pd.Series, task: str, positive_label: str | None = None) -> TargetSpec:
    """Check the target column for ``task`` and decide its encoding.

    Raises
    ------
    DataError
        The target is entirely missing or constant, a binary target has more than two labels, or a
        regression target holds text.
    """
    task = str(getattr(task, "value", task))
    name = str(series.name)
    n = len(series)
    present = series.notna()
    if not present.any():
        raise DataError(f"data.target: column {name!r} has no values (all {n:,} rows are missing)")
    if task == REGRESSION:
        values, bad = to_numeric(series)
        if bad.sum() > 0.5 * present.sum():
            rows = np.flatnonzero(bad)[:3]
            ex = ", ".join(repr(str(v)) for v in pd.unique(series.iloc[rows].astype("str")))
            raise DataError(f"data.target: column {name!r} must be numeric for data.task=regression; found text "
                            f"such as {ex} (rows {', '.join(map(str, rows))}); for labels use data.task=binary")
        v = values.to_numpy()
        v = v[np.isfinite(v)]
        if v.size and v.min() == v.max():
            raise DataError(f"data.target: column {name!r} is constant ({v[0]:g} in every row with a value); "
                            "a model needs a target that varies")
        return TargetSpec(column=name, task=task)
    labels = label_categories(series)
    counts = labels.value_counts(dropna=True)
    counts = counts[counts > 0]
    counts_d = {str(k): int(v) for k, v in counts.items()}
    if len(counts_d) == 1:
        only = next(iter(counts_d))
        raise DataError(f"data.target: column {name!r} is constant ({only!r} in all {counts_d[only]:,} rows with "
                        "a value); a binary target needs two classes")
    if len(counts_d) > 2:
        hint = " (set data.task=regression for a numeric target)" if _numeric_like(series) else ""
        raise DataError(f"data.target: column {name!r} has {len(counts_d)} distinct values; data.task=binary needs "
                        f"exactly two: {_preview(list(counts_d))}{hint}")
    pos, rule = choose_positive(counts_d, positive_label, name)
    neg = next(lbl for lbl in counts_d if lbl != pos)
    return TargetSpec(column=name, task=task, positive_label=pos, negative_label=neg, rule=rule, counts=counts_d)


def _numeric_like(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def encode_target(series: pd.Series, spec: TargetSpec) -> tuple[np.ndarray, np.ndarray]:
    """(y, invalid): y as int8 0/1 (binary) or float64 (regression); ``invalid`` marks rows with a
    missing target or a label that is not one of the two known labels (their y is 0 / NaN)."""
    if spec.task == REGRESSION:
        values, _ = to_numeric(series)
        y = values.to_numpy(dtype=np.float64)
        return y, ~np.isfinite(y)
    labels = label_categories(series)
    pos = labels.isin([spec.positive_label]).to_numpy(dtype=bool)
    neg = labels.isin([spec.negative_label]).to_numpy(dtype=bool)
    return pos.astype(np.int8), ~(pos | neg)
