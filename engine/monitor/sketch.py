"""The reference sketch: everything drift comparison needs from the reference data, and no rows.

:func:`fit_reference` places quantile bin edges per numeric feature, then runs the fused kernels once
over the reference to fill histograms, moments, missing counts, category counts and the correlation
matrix. :meth:`ReferenceSketch.save` writes ``sketch.json`` (names, categories, metadata, format
version) and ``sketch.npz`` (arrays, loaded without pickle).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import DataError
from engine.monitor.config import MonitorConfig
from engine.monitor.frames import Table, infer_columns, is_dask, is_table
from engine.monitor.metrics import correlation_from_moments
from engine.monitor.stats import PartialStats, StatsSpec, collect

__all__ = ["FORMAT_VERSION", "ReferenceSketch", "fit_reference"]

#: Version of the saved layout; :meth:`ReferenceSketch.load` refuses other versions.
FORMAT_VERSION = 1
_JSON = "sketch.json"
_NPZ = "sketch.npz"
_ARRAYS = ("edges", "counts", "missing", "min", "max", "shift", "sum", "sumsq", "corr")


@dataclass
class ReferenceSketch:
    """Binned summary of a reference dataset.

    Numeric arrays are indexed like :attr:`numeric`: ``edges`` ``(F, max_bins + 1)`` (NaN padded,
    see :mod:`kernels.binned_stats` for the binning rule), ``counts`` ``(F, max_bins)``, ``missing``,
    ``min``, ``max``, ``sum`` and ``sumsq`` of ``x - shift`` (``shift`` is close to the mean), and
    ``corr`` ``(F, F)`` Pearson correlations over pairwise-complete rows. Categorical columns keep
    their categories (most frequent first), counts per category and missing counts.
    """

    numeric: list[str]
    categorical: list[str]
    n_rows: int
    edges: np.ndarray
    counts: np.ndarray
    missing: np.ndarray
    min: np.ndarray
    max: np.ndarray
    shift: np.ndarray
    sum: np.ndarray
    sumsq: np.ndarray
    corr: np.ndarray
    categories: dict[str, list[Any]]
    category_counts: dict[str, np.ndarray]
    category_missing: dict[str, int]
    skipped: dict[str, str] = field(default_factory=dict)
    created: str = ""

    # ---------------------------------------------------------------------------- derived values
    @property
    def count(self) -> np.ndarray:
        """Non-missing values per numeric feature."""
        return self.n_rows - self.missing

    @property
    def mean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.shift + self.sum / self.count

    @property
    def std(self) -> np.ndarray:
        """Sample standard deviation (``ddof=1``)."""
        return _std(self.count, self.sum, self.sumsq)

    @property
    def missing_rate(self) -> np.ndarray:
        return self.missing / self.n_rows if self.n_rows else np.full(len(self.numeric), np.nan)

    def frequencies(self, name: str) -> dict[Any, float]:
        """Share of each category among the non-missing values of categorical column ``name``."""
        counts = self.category_counts[name]
        total = counts.sum()
        return {c: (float(k) / total if total else 0.0) for c, k in zip(self.categories[name], counts)}

    def nbins(self, j: int) -> int:
        return int((~np.isnan(self.edges[j])).sum() - 1)

    def centres(self, j: int) -> np.ndarray:
        e = self.edges[j, : self.nbins(j) + 1]
        return 0.5 * (e[:-1] + e[1:])

    def centre_matrix(self) -> np.ndarray:
        """Bin centres of every numeric feature, ``(F, max_bins)``, NaN past a feature's own bins."""
        return 0.5 * (self.edges[:, :-1] + self.edges[:, 1:])

    def _vocab(self) -> list[Any]:
        """One pandas Index of known categories per categorical column, built once per sketch (a
        monitoring loop compares many batches against one sketch)."""
        import pandas as pd

        key = tuple((c, len(self.categories[c])) for c in self.categorical)
        cached = self.__dict__.get("_vocab_cache")
        if cached is None or cached[0] != key:
            cached = (key, [pd.Index(self.categories[c]) for c in self.categorical])
            self.__dict__["_vocab_cache"] = cached
        return cached[1]

    def spec(self, keep_values: bool = False) -> StatsSpec:
        """The statistics a comparison computes on new data."""
        return StatsSpec(
            numeric=list(self.numeric),
            edges=self.edges,
            shift=self.shift,
            categorical=list(self.categorical),
            vocab=self._vocab(),
            correlation=len(self.numeric) > 1,
            keep_values=keep_values,
            matrix_names=list(self.numeric),
        )

    # ---------------------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``sketch.json`` and ``sketch.npz`` into ``directory`` (atomically, no pickle)."""
        from engine.atomic import write_json, write_npz

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.asarray(getattr(self, k)) for k in _ARRAYS}
        offsets = np.cumsum([0] + [len(self.category_counts[c]) for c in self.categorical]).astype(np.int64)
        arrays["category_counts"] = (
            np.concatenate([self.category_counts[c] for c in self.categorical]).astype(np.int64)
            if self.categorical
            else np.zeros(0, np.int64)
        )
        arrays["category_offsets"] = offsets
        write_npz(d / _NPZ, arrays)
        meta = {
            "format": "trident.reference_sketch",
            "format_version": FORMAT_VERSION,
            "created": self.created,
            "n_rows": int(self.n_rows),
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "categories": {c: list(self.categories[c]) for c in self.categorical},
            "category_missing": {c: int(self.category_missing[c]) for c in self.categorical},
            "skipped": dict(self.skipped),
        }
        write_json(d / _JSON, meta)
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "ReferenceSketch":
        """Read a sketch written by :meth:`save`.

        Raises
        ------
        DataError
            When a file is missing, the format version differs, or arrays and names disagree.
        """
        d = Path(directory)
        try:
            meta = json.loads((d / _JSON).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DataError(f"reference sketch: {d / _JSON} not found") from exc
        except json.JSONDecodeError as exc:
            raise DataError(f"reference sketch: {d / _JSON} is not valid JSON ({exc})") from exc
        version = meta.get("format_version")
        if meta.get("format") != "trident.reference_sketch" or version != FORMAT_VERSION:
            raise DataError(
                f"reference sketch {d}: format version {version!r} is not supported (expected {FORMAT_VERSION}); "
                "fit the reference again"
            )
        try:
            with np.load(d / _NPZ, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError as exc:
            raise DataError(f"reference sketch: {d / _NPZ} not found") from exc
        numeric, categorical = list(meta["numeric"]), list(meta["categorical"])
        missing_keys = [k for k in (*_ARRAYS, "category_counts", "category_offsets") if k not in arrays]
        if missing_keys:
            raise DataError(f"reference sketch {d / _NPZ}: arrays {missing_keys} missing")
        if arrays["edges"].shape[0] != len(numeric) or arrays["category_offsets"].shape[0] != len(categorical) + 1:
            raise DataError(f"reference sketch {d}: arrays do not match the {len(numeric)} numeric / {len(categorical)} categorical names")
        off = arrays["category_offsets"]
        cc = arrays["category_counts"]
        return cls(
            numeric=numeric,
            categorical=categorical,
            n_rows=int(meta["n_rows"]),
            **{k: arrays[k] for k in _ARRAYS},
            categories={c: list(meta["categories"][c]) for c in categorical},
            category_counts={c: cc[off[i] : off[i + 1]].copy() for i, c in enumerate(categorical)},
            category_missing={c: int(meta["category_missing"][c]) for c in categorical},
            skipped=dict(meta.get("skipped", {})),
            created=str(meta.get("created", "")),
        )


def _std(count: np.ndarray, s: np.ndarray, ss: np.ndarray) -> np.ndarray:
    count = np.asarray(count, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (ss - s * s / count) / (count - 1)
    var = np.where(count > 1, np.maximum(var, 0.0), np.nan)
    return np.sqrt(var)


# ------------------------------------------------------------------------------------ edges
def quantile_edges(values: Any, bins: int) -> np.ndarray:
    """Distinct quantiles ``0, 1/bins, ..., 1`` of the non-missing values (at least two edges)."""
    from engine.backend import get_namespace, to_numpy

    xp = get_namespace(values)
    v = values[~xp.isnan(values)]
    if v.size == 0:
        return np.array([0.0, 0.0])
    q = to_numpy(xp.quantile(v.astype(np.float64), xp.asarray(np.linspace(0.0, 1.0, bins + 1))))
    e = np.unique(q)
    if e.size == 1:
        e = np.array([e[0], e[0]])
    return e


def _pad_edges(per_column: list[np.ndarray]) -> np.ndarray:
    width = max(len(e) for e in per_column)
    out = np.full((len(per_column), width), np.nan)
    for j, e in enumerate(per_column):
        out[j, : len(e)] = e
    return out


def _sample(data: Any, numeric: list[str], sample_rows: int) -> Any:
    """A matrix of about ``sample_rows`` evenly strided reference rows of the numeric columns."""
    from engine.backend import to_numpy

    if is_dask(data):
        lengths = data.map_partitions(len).compute()
        step = max(1, math.ceil(int(sum(lengths)) / max(sample_rows, 1)))
        part = data[numeric].map_partitions(lambda p: p.iloc[::step]).compute()
        return Table(part).numeric(numeric, 0, len(part))
    tables = [Table(t, numeric) for t in data]
    total = sum(t.n_rows for t in tables)
    step = max(1, math.ceil(total / max(sample_rows, 1)))
    blocks = [to_numpy(t.numeric(numeric, 0, t.n_rows)[::step]) for t in tables if t.n_rows]
    return np.concatenate(blocks) if blocks else np.zeros((0, len(numeric)))


# ------------------------------------------------------------------------------------ fitting
def fit_reference(
    data: Any,
    numeric: list[str] | None = None,
    categorical: list[str] | None = None,
    bins: int | None = None,
    edges: dict[str, Any] | None = None,
    config: MonitorConfig | None = None,
) -> ReferenceSketch:
    """Sketch a reference dataset for later :func:`engine.monitor.compare` calls.

    Parameters
    ----------
    data : DataFrame, mapping of columns, 2-D array, list of those, or Dask DataFrame
        pandas / cuDF frames and NumPy / CuPy arrays are read where they live. A list of chunks is
        read twice (edges, then counts); a Dask DataFrame is reduced per partition.
    numeric, categorical : list of str, optional
        Columns to sketch; by default inferred from dtypes (numbers are numeric; strings, booleans and
        pandas categoricals are categorical; dates are skipped). Inferred categorical columns with
        more than ``config.max_categories`` levels are skipped (``sketch.skipped`` says so).
    bins : int, optional
        Quantile bins per numeric feature (default ``config.bins``); tied quantiles merge, so a
        feature can get fewer bins.
    edges : dict of str to array, optional
        Fixed bin edges for some numeric features instead of quantiles.
    config : MonitorConfig, optional

    Returns
    -------
    ReferenceSketch

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"a": np.arange(100.0), "c": ["x", "y"] * 50})
    >>> sk = fit_reference(df, bins=4)
    >>> sk.numeric, sk.categorical, sk.counts.tolist(), sk.categories["c"]
    (['a'], ['c'], [[25, 25, 25, 25]], ['x', 'y'])
    """
    cfg = config or MonitorConfig()
    nbins = int(bins if bins is not None else cfg.bins)
    if nbins < 1:
        raise DataError(f"bins: expected at least 1, got {nbins}")
    dask_input = is_dask(data)
    if not dask_input and not is_table(data):
        if not isinstance(data, (list, tuple)):
            raise DataError(
                "reference chunks must be a list or tuple (they are read twice: quantiles, then counts); "
                f"got {type(data).__name__}"
            )
        if not data:
            raise DataError("no reference data: the list of chunks is empty")
    probe = Table(data._meta) if dask_input else Table(data if is_table(data) else data[0])
    explicit_cat = categorical is not None
    num, cat, skipped = infer_columns(probe, numeric, categorical)

    # 1. bin edges and shift: from all rows of one table, else from an evenly strided sample
    fixed = dict(edges or {})
    unknown = sorted(set(fixed) - set(num))
    if unknown:
        raise DataError(f"edges given for {unknown}, which are not numeric features {num}")
    col_edges: list[np.ndarray] = []
    shift = np.zeros(len(num))
    if num:
        from engine.backend import get_namespace, to_numpy

        if is_table(data):
            t = Table(data)
            sample = None
        else:
            sample = _sample(data, num, cfg.quantile_sample_rows)
        for j, name in enumerate(num):
            col = sample[:, j] if sample is not None else t.numeric([name], 0, t.n_rows)[:, 0]
            xp = get_namespace(col)
            ok = ~xp.isnan(col)
            shift[j] = float(to_numpy(col[ok].astype(np.float64).mean())) if bool(ok.any()) else 0.0
            if name in fixed:
                e = np.asarray(to_numpy(fixed[name]), dtype=np.float64).reshape(-1)
                if e.size < 2 or np.isnan(e).any() or np.any(np.diff(e) < 0):
                    raise DataError(f"edges[{name!r}]: expected at least 2 non-decreasing numbers, got {e.tolist()}")
                col_edges.append(e)
            else:
                col_edges.append(quantile_edges(col, nbins))
    edge_matrix = _pad_edges(col_edges) if num else np.zeros((0, 2))

    # 2. one pass of the kernels; categories are all "unseen" against an empty vocabulary
    import pandas as pd

    spec = StatsSpec(
        numeric=num,
        edges=edge_matrix,
        shift=shift,
        categorical=cat,
        vocab=[pd.Index([]) for _ in cat],
        correlation=len(num) > 1,
        max_new=cfg.max_categories,
        matrix_names=num,
    )
    stats = collect(data, spec, cfg.chunk_rows)
    return _build(stats, spec, cat, explicit_cat, skipped, cfg)


def _build(
    stats: PartialStats, spec: StatsSpec, cat: list[str], explicit_cat: bool, skipped: dict[str, str], cfg: MonitorConfig
) -> ReferenceSketch:
    num = spec.numeric
    f = len(num)
    if f:
        bs = stats.numeric
        count, s, ss = bs.count, bs.sum, bs.sumsq
        if stats.cross is not None:
            cr = stats.cross
            corr = correlation_from_moments(count, s, ss, cr["p"], cr["sm"], cr["qm"], cr["nm"])
        else:
            corr = np.ones((f, f)) if f == 1 and count[0] > 1 else np.full((f, f), np.nan)
        numeric_arrays = dict(counts=bs.counts, missing=bs.missing, min=bs.min, max=bs.max, sum=s, sumsq=ss)
    else:
        numeric_arrays = dict(
            counts=np.zeros((0, 1), np.int64), missing=np.zeros(0, np.int64), min=np.zeros(0), max=np.zeros(0),
            sum=np.zeros(0), sumsq=np.zeros(0),
        )
        corr = np.zeros((0, 0))
    categories: dict[str, list[Any]] = {}
    cat_counts: dict[str, np.ndarray] = {}
    cat_missing: dict[str, int] = {}
    kept = []
    for j, name in enumerate(cat):
        new = stats.cat_new[j]
        if new is None:
            msg = f"more than {cfg.max_categories} distinct values (monitor.max_categories)"
            if explicit_cat:
                raise DataError(f"categorical column {name!r}: {msg}; declare it numeric, drop it or raise the limit")
            skipped[name] = msg
            continue
        order = sorted(new.items(), key=lambda kv: (-kv[1], str(kv[0])))
        categories[name] = [k for k, _ in order]
        cat_counts[name] = np.array([v for _, v in order], np.int64)
        cat_missing[name] = int(stats.cat_missing[j])
        kept.append(name)
    return ReferenceSketch(
        numeric=list(num),
        categorical=kept,
        n_rows=int(stats.n_rows),
        edges=spec.edges,
        shift=np.asarray(spec.shift, np.float64),
        corr=corr,
        categories=categories,
        category_counts=cat_counts,
        category_missing=cat_missing,
        skipped=skipped,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **numeric_arrays,
    )
