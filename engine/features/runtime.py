"""Apply a fitted Trident feature pipeline: raw columns in, a float32 feature matrix out.

This module is self-contained on purpose: it imports only NumPy and the Python standard library, so
it can be copied verbatim next to a served model (a Triton python-backend model running NumPy 1.26)
and computes exactly what the offline :class:`engine.features.FeaturePipeline` computes, which
delegates its ``transform`` to :class:`FeatureRuntime`.

Artifact
--------
A folder with ``features.json`` (format name, format version, inputs, steps, feature names) and
``features.npz`` (every fitted array; no pickled objects). :meth:`FeatureRuntime.load` reads it.

Inputs, by kind (:attr:`FeatureRuntime.input_kinds`)
----------------------------------------------------
numeric
    Float or integer arrays. NaN and +/-inf are missing. Object arrays of Python numbers and ``None``
    are accepted; strings, bytes and datetimes are an error naming the column.
categorical
    ``str`` / ``bytes`` / object arrays, or integers (compared as their decimal text; a float with an
    integral value such as ``3.0`` is the category ``"3"``). Missing: ``None``, NaN, pandas NA and the
    empty string (``""`` or ``b""``, which is how a missing value travels in a Triton BYTES tensor).
    Bytes are read as UTF-8 (invalid bytes are kept as they are through ``surrogateescape``). A value
    never seen in training is handled, never an error: one-hot -> the "other" level, frequency -> 0,
    target -> the training prior, hashing -> its bucket.
datetime
    ``datetime64`` arrays (any unit) or ISO-8601 strings (``"2024-05-01"``, ``"2024-05-01T13:45:00"``,
    a space instead of ``T`` works; an offset such as ``+02:00`` or ``Z`` is converted to UTC).
    ``""``, ``None`` and ``"NaT"`` are missing. Numbers are an error naming the column.

Arrays may be 1-D or of shape ``(rows, 1)``. Missing values are imputed with the statistic learned in
training, so an all-missing column is valid input: every row gets the imputed value (and the missing
indicator, where the pipeline has one, is 1).

Namespaces
----------
``transform(columns, xp=cupy)`` computes on the GPU: numeric columns move to the device (or already
live there), categorical and datetime columns are dictionary-encoded / parsed on the host once and only
their integer codes move. All the arithmetic goes through ``xp``.

Hashing
-------
:func:`hash_bytes` is the NumPy reference of Trident's categorical hash (``kernels.hashing`` holds its
Numba CPU and CUDA twins): FNV-1a over the value's UTF-8 bytes, 32-bit, starting from the FNV offset
basis XOR the seed, then the MurmurHash3 ``fmix32`` finaliser. ``bucket = hash % n_buckets``.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any, Callable, NamedTuple

import numpy as np

FORMAT = "trident.features"
FORMAT_VERSION = 1
SPEC_FILE = "features.json"
ARRAYS_FILE = "features.npz"

#: Rows per block when computing on NumPy (keeps the temporaries of one block in cache).
CHUNK_ROWS = 1 << 16
#: int64 value of NaT.
NAT = np.iinfo(np.int64).min
_NS_PER_DAY = 86_400 * 10**9
_NS_PER_HOUR = 3_600 * 10**9

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
_M32 = 0xFFFFFFFF

#: Date parts a datetime column can produce, in output order.
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "hour", "epoch_days")

KINDS = ("numeric", "categorical", "datetime")
ENCODERS = ("onehot", "hashing", "frequency", "target")
SOURCES = ("column", "ratio", "difference", "datepart")
REDUCERS = ("none", "pca", "svd")


class FeatureInputError(ValueError):
    """An input column is missing, of the wrong type or shape; the message names the column."""


class Encoded(NamedTuple):
    """A dictionary-encoded column: ``values[codes]``, code ``-1`` = missing.

    The offline pipeline hands categorical columns to the runtime in this form (pandas / pyarrow
    encode them once); the runtime itself encodes raw arrays with :func:`encode_categorical`.
    """

    codes: np.ndarray
    values: np.ndarray


class StringColumn(NamedTuple):
    """Strings in Arrow layout: ``data[offsets[i]:offsets[i + 1]]`` are the UTF-8 bytes of row ``i``.

    ``missing`` (bool per row) or ``None``. An empty string is missing, as everywhere else. The hashing
    encoder hashes these bytes directly (no dictionary needed); other encoders decode them.
    """

    data: np.ndarray
    offsets: np.ndarray
    missing: Any = None

    def __len__(self) -> int:
        return int(self.offsets.shape[0]) - 1

    def to_objects(self) -> np.ndarray:
        """The values as a NumPy object array of ``str`` (``None`` where missing)."""
        buf = self.data.tobytes()
        offs = self.offsets.tolist()
        out = np.empty(len(self), dtype=object)
        out[:] = [buf[a:b].decode("utf-8", "surrogateescape") for a, b in zip(offs[:-1], offs[1:])]
        if self.missing is not None:
            out[np.asarray(self.missing, dtype=bool)] = None
        return out


# ----------------------------------------------------------------------------------------- hashing
def fmix32(h: Any) -> Any:
    """MurmurHash3's 32-bit finaliser on a uint32 array (any namespace)."""
    h = h ^ (h >> 16)
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def hash_bytes(data: np.ndarray, offsets: np.ndarray, seed: int = 0) -> np.ndarray:
    """Hash each byte string ``data[offsets[i]:offsets[i + 1]]`` to 32 bits (NumPy reference).

    Seeded FNV-1a (state starts at ``0x811C9DC5 ^ seed``; per byte ``h = (h ^ b) * 0x01000193`` mod
    2**32), then MurmurHash3's ``fmix32``. Vectorised across strings: one NumPy step per byte position,
    strings sorted by length so each step works on a prefix.

    Parameters
    ----------
    data : uint8 array
        Concatenated bytes.
    offsets : int array of length ``n + 1``
        Start of each string, then the end of the last one (need not start at 0).
    seed : int
        Any integer; its low 32 bits are used.

    Returns
    -------
    uint32 array of length ``n``.

    Examples
    --------
    >>> d, o = strings_to_buffer(["a", "", "hello"])
    >>> hash_bytes(d, o, seed=0).dtype
    dtype('uint32')
    """
    data = np.asarray(data, dtype=np.uint8).reshape(-1)
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1)
    n = max(int(offsets.shape[0]) - 1, 0)
    h0 = np.uint32((FNV_OFFSET ^ (int(seed) & _M32)) & _M32)
    if n == 0:
        return np.zeros(0, dtype=np.uint32)
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    if lengths.min() < 0:
        raise ValueError("offsets must be non-decreasing")
    order = np.argsort(-lengths, kind="stable")
    slen = lengths[order]
    sstart = starts[order]
    neg = -slen  # ascending
    h = np.full(n, h0, dtype=np.uint32)
    prime = np.uint32(FNV_PRIME)
    for j in range(int(slen[0])):
        k = int(np.searchsorted(neg, -j, side="left"))  # strings longer than j
        hk = h[:k]
        hk ^= data[sstart[:k] + j]
        hk *= prime
    h = fmix32(h)
    out = np.empty(n, dtype=np.uint32)
    out[order] = h
    return out


def strings_to_buffer(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of ``str`` / ``bytes`` values as (uint8 data, int64 offsets of length n + 1)."""
    enc = [v if isinstance(v, (bytes, bytearray)) else str(v).encode("utf-8", "surrogateescape") for v in values]
    n = len(enc)
    offsets = np.zeros(n + 1, dtype=np.int64)
    if n:
        np.cumsum(np.fromiter(map(len, enc), dtype=np.int64, count=n), out=offsets[1:])
    data = np.frombuffer(b"".join(enc), dtype=np.uint8)
    return data, offsets


def hash_strings(values: Any, seed: int = 0, hasher: Callable | None = None) -> np.ndarray:
    """:func:`hash_bytes` of the UTF-8 bytes of each value (``hasher`` computes the same, faster)."""
    data, offsets = strings_to_buffer(values)
    return (hasher or hash_bytes)(data, offsets, seed)


# ------------------------------------------------------------------------------ input conversion
def _is_device(a: Any) -> bool:
    return hasattr(a, "__cuda_array_interface__") and not isinstance(a, np.ndarray)


def _as_1d(values: Any, name: str) -> Any:
    if _is_device(values):
        a = values
    else:
        a = np.asarray(values)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise FeatureInputError(f"column {name!r}: expected a 1-D array (or shape (rows, 1)), got shape {tuple(a.shape)}")
    return a


def _missing_name(v: Any) -> bool:
    return type(v).__name__ in ("NAType", "NaTType")


def canonical_category(v: Any) -> str | None:
    """The text a categorical value is compared and hashed as; ``None`` when the value is missing."""
    if v is None or _missing_name(v):
        return None
    if isinstance(v, str):
        s = v
    elif isinstance(v, (bytes, bytearray, np.bytes_)):
        s = bytes(v).decode("utf-8", "surrogateescape")
    elif isinstance(v, (bool, np.bool_)):
        s = "True" if v else "False"
    elif isinstance(v, (int, np.integer)):
        s = str(int(v))
    elif isinstance(v, (float, np.floating)):
        f = float(v)
        if f != f:
            return None
        s = str(int(f)) if f.is_integer() else repr(f)
    else:
        try:
            if v != v:
                return None
        except (TypeError, ValueError):
            pass
        s = str(v)
    return s if s else None


def merge_dictionary(codes: np.ndarray, values: Any) -> Encoded:
    """Canonicalise a dictionary (see :func:`canonical_category`) and remap codes: equal texts merge,
    missing entries become code -1. The returned dictionary is unique (object array of str).
    """
    values = list(values.tolist() if isinstance(values, np.ndarray) else values)
    canon = [canonical_category(v) for v in values]
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        codes = codes.astype(np.int64)
    if None not in canon and len(set(canon)) == len(canon):  # already canonical: keep codes as they are
        out = np.empty(len(canon), dtype=object)
        out[:] = canon
        return Encoded(codes, out)
    uniq = sorted({c for c in canon if c is not None})
    index = {s: i for i, s in enumerate(uniq)}
    table = np.full(len(values) + 1, -1, dtype=np.int64)  # last entry: code -1 stays -1
    table[:-1] = [index[c] if c is not None else -1 for c in canon]
    out = np.empty(len(uniq), dtype=object)
    out[:] = uniq
    return Encoded(table[codes], out)


def _object_missing(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray((a == None) | (a != a), dtype=bool)  # noqa: E711  (elementwise)


def encode_categorical(values: Any, name: str = "?") -> Encoded:
    """Dictionary-encode a categorical column (raw array, :class:`Encoded` or :class:`StringColumn`)."""
    if isinstance(values, Encoded):
        return merge_dictionary(values.codes, values.values)
    if isinstance(values, StringColumn):
        values = values.to_objects()
    a = _as_1d(values, name)
    if _is_device(a):
        raise FeatureInputError(f"column {name!r}: categorical values must be a host (NumPy) array")
    if a.dtype.kind == "O":
        try:
            miss = _object_missing(a)
            sub = a[~miss]
            uniq, inv = np.unique(sub, return_inverse=True)
            codes = np.full(a.shape[0], -1, dtype=np.int64)
            codes[~miss] = inv.reshape(-1)
            return merge_dictionary(codes, uniq)
        except TypeError:  # values of types that do not sort together (e.g. str and int)
            canon = [canonical_category(v) for v in a.tolist()]
            uniq = sorted({c for c in canon if c is not None})
            index = {s: i for i, s in enumerate(uniq)}
            codes = np.fromiter((index[c] if c is not None else -1 for c in canon), dtype=np.int64, count=len(canon))
            out = np.empty(len(uniq), dtype=object)
            out[:] = uniq
            return Encoded(codes, out)
    if a.dtype.kind in "USbiufMm":
        uniq, inv = np.unique(a, return_inverse=True)
        return merge_dictionary(inv.reshape(-1), uniq)
    raise FeatureInputError(f"column {name!r}: expected categorical values (str, bytes, object or integers), got dtype {a.dtype}")


def to_numeric(values: Any, name: str = "?") -> Any:
    """Validate a numeric column; returns a float array (host or device), NaN = missing."""
    a = _as_1d(values, name)
    kind = a.dtype.kind
    if kind == "f":
        return a
    if kind in "iub":
        return a.astype(np.float64)
    if kind in "US":
        raise FeatureInputError(f"column {name!r}: expected numeric values (float or int, NaN for missing), "
                                f"got strings (dtype {a.dtype})")
    if kind in "Mm":
        raise FeatureInputError(f"column {name!r}: expected numeric values (float or int, NaN for missing), "
                                f"got {a.dtype}")
    if kind == "O":
        bad = next((v for v in a.tolist() if isinstance(v, (str, bytes, bytearray))), None)
        if bad is not None:
            raise FeatureInputError(f"column {name!r}: expected numeric values (float or int, NaN for missing), "
                                    f"got strings such as {bad!r}")
        miss = _object_missing(a)
        b = a.copy()
        b[miss] = np.nan
        try:
            return b.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise FeatureInputError(f"column {name!r}: expected numeric values (float or int, NaN for missing); "
                                    f"{exc}") from None
    raise FeatureInputError(f"column {name!r}: expected numeric values (float or int), got dtype {a.dtype}")


def _parse_datetimes(values: np.ndarray, name: str) -> np.ndarray:
    """Canonical strings (object array, no missing) -> int64 nanoseconds since the epoch (UTC)."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    strs = np.array([str(v) for v in values.tolist()], dtype=str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy warns when it converts a time-zone offset to UTC
        try:
            return strs.astype("datetime64[ns]").view(np.int64)
        except (ValueError, TypeError, OverflowError):
            pass
        for s in strs.tolist():
            try:
                np.array([s]).astype("datetime64[ns]")
            except (ValueError, TypeError, OverflowError):
                raise FeatureInputError(f"column {name!r}: expected datetime64 values or ISO-8601 strings, "
                                        f"could not parse {s!r}") from None
    raise FeatureInputError(f"column {name!r}: could not parse its datetime values")


def to_datetime_ns(values: Any, name: str = "?") -> np.ndarray:
    """Validate a datetime column; returns int64 nanoseconds since 1970-01-01 UTC (:data:`NAT` = missing)."""
    if isinstance(values, Encoded):
        enc = merge_dictionary(values.codes, values.values)
    else:
        a = _as_1d(values, name)
        if _is_device(a):
            raise FeatureInputError(f"column {name!r}: datetime values must be a host (NumPy) array")
        if a.dtype.kind == "M":
            return a.astype("datetime64[ns]", copy=False).view(np.int64)
        if a.dtype.kind not in "USO":
            raise FeatureInputError(f"column {name!r}: expected datetime64 values or ISO-8601 strings, got dtype {a.dtype}")
        if a.dtype.kind == "O":
            bad = next((v for v in a.tolist() if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                        and v == v), None)
            if bad is not None:
                raise FeatureInputError(f"column {name!r}: expected datetime64 values or ISO-8601 strings, "
                                        f"got numbers such as {bad!r}")
        enc = encode_categorical(a, name)
    parsed = np.append(_parse_datetimes(enc.values, name), np.int64(NAT))
    return parsed[enc.codes]


# ----------------------------------------------------------------------------------- date parts
def _days_from_civil_jan1(y: Any) -> Any:
    yy = y - 1
    era = yy // 400
    yoe = yy - era * 400
    doe = yoe * 365 + yoe // 4 - yoe // 100 + 306
    return era * 146097 + doe - 719468


def _civil(days: Any, want: set[str], xp: Any) -> dict[str, Any]:
    """Calendar fields of whole days since 1970-01-01 (int64, any namespace)."""
    out: dict[str, Any] = {}
    if want & {"year", "month", "day", "dayofyear"}:
        z = days + 719468
        era = z // 146097
        doe = z - era * 146097
        yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
        doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
        mp = (5 * doy + 2) // 153
        month = xp.where(mp < 10, mp + 3, mp - 9)
        year = yoe + era * 400 + (month <= 2)
        if "year" in want:
            out["year"] = year
        if "month" in want:
            out["month"] = month
        if "day" in want:
            out["day"] = doy - (153 * mp + 2) // 5 + 1
        if "dayofyear" in want:
            out["dayofyear"] = days - _days_from_civil_jan1(year) + 1
    if "dayofweek" in want:
        out["dayofweek"] = (days + 3) % 7
    return out


#: Date parts that depend on the day only (computed once per distinct day through a lookup table).
_DAY_PARTS = ("year", "month", "day", "dayofweek", "dayofyear")
#: Largest span of days turned into lookup tables (2**22 days is about 11,500 years).
_MAX_TABLE_DAYS = 1 << 22


def day_tables(ns: Any, parts: Any, xp: Any = np) -> tuple[int, dict[str, Any]] | None:
    """Per-day lookup tables for the calendar parts of a whole column: ``(first_day, {part: float64})``.

    ``None`` when the column has no valid value, no calendar part is wanted, or its days span more
    than :data:`_MAX_TABLE_DAYS`.
    """
    want = set(parts) & set(_DAY_PARTS)
    if not want:
        return None
    valid = ns != NAT
    if not bool(valid.any()):
        return None
    lo = int(xp.where(valid, ns, np.iinfo(np.int64).max).min()) // _NS_PER_DAY
    hi = int(ns.max()) // _NS_PER_DAY  # NaT is the smallest int64: it never is the maximum
    if hi - lo >= _MAX_TABLE_DAYS:
        return None
    fields = _civil(xp.arange(lo, hi + 1, dtype=xp.int64), want, xp)
    return lo, {p: v.astype(xp.float64) for p, v in fields.items()}


def date_parts(ns: Any, parts: Any, xp: Any = np, tables: tuple[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Date parts of int64 nanoseconds (any namespace), as float64 arrays with NaN where NaT.

    year, month (1-12), day (1-31), dayofweek (Monday = 0), dayofyear (1-366), hour (0-23) and
    epoch_days (whole days since 1970-01-01, floored). Integer arithmetic only (H. Hinnant's civil
    calendar algorithms), so NumPy and CuPy agree exactly; ``tables`` (from :func:`day_tables`) gives
    the same values by lookup.
    """
    nat = ns == NAT
    ns = xp.where(nat, 0, ns)
    days = ns // _NS_PER_DAY
    want = set(parts)
    out: dict[str, Any] = {}
    lo, tab = tables if tables is not None else (0, {})
    if tab:
        idx = xp.where(nat, 0, days - lo)
        for p in want & set(tab):
            out[p] = tab[p][idx]
    rest = (want & set(_DAY_PARTS)) - set(out)
    if rest:
        out.update(_civil(days, rest, xp))
    if "hour" in want:
        out["hour"] = (ns - days * _NS_PER_DAY) // _NS_PER_HOUR
    if "epoch_days" in want:
        out["epoch_days"] = days
    res = {}
    for p in parts:
        v = out[p]
        v = v.astype(xp.float64) if v.dtype != xp.float64 else v
        xp.copyto(v, xp.nan, where=nat)
        res[p] = v
    return res


def _lookup(levels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each value in the sorted ``levels`` (-1 when absent)."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(levels) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    q = np.array(list(values), dtype=str)
    pos = np.minimum(np.searchsorted(levels, q), len(levels) - 1)
    return np.where(levels[pos] == q, pos, -1).astype(np.int64)


# ------------------------------------------------------------------------------------ the runtime
class FeatureRuntime:
    """The fitted feature pipeline, applied with NumPy (or CuPy through ``xp``).

    Parameters
    ----------
    spec : dict
        The parsed ``features.json``.
    arrays : dict of str -> ndarray
        The arrays of ``features.npz``.
    hasher : callable, optional
        ``hasher(data, offsets, seed) -> uint32`` computing :func:`hash_bytes` (the offline pipeline
        passes Trident's Numba twin); defaults to :func:`hash_bytes`.

    Examples
    --------
    >>> rt = FeatureRuntime.load("runs/abc/features")            # doctest: +SKIP
    >>> X = rt.transform({"income": np.array([1.0, np.nan]),     # doctest: +SKIP
    ...                   "home": np.array(["rent", "owner"], dtype=object)})
    """

    def __init__(self, spec: dict[str, Any], arrays: dict[str, np.ndarray], hasher: Callable | None = None) -> None:
        if spec.get("format") != FORMAT:
            raise ValueError(f"not a Trident feature pipeline: format {spec.get('format')!r}, expected {FORMAT!r}")
        if spec.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"feature pipeline format_version {spec.get('format_version')!r}; this runtime reads "
                             f"{FORMAT_VERSION}")
        self.spec = spec
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
        self.hasher = hasher or hash_bytes
        self.inputs: list[tuple[str, str]] = [(str(c), str(k)) for c, k in spec["inputs"]]
        for c, k in self.inputs:
            if k not in KINDS:
                raise ValueError(f"input {c!r}: unknown kind {k!r}")
        self.n_columns = int(spec["n_columns"])
        self.numeric = list(spec.get("numeric", []))
        self.categorical = list(spec.get("categorical", []))
        self.reduce_spec = dict(spec.get("reduce") or {"method": "none"})
        self.params = np.asarray(self.arrays.get("numeric_params", np.zeros((0, 5))), dtype=np.float64).reshape(-1, 5)
        if self.params.shape[0] != len(self.numeric):
            raise ValueError("numeric_params does not match the numeric steps")
        self._fill_scaled = self._scaled_fills()
        for ent in self.categorical:
            if ent["encoder"] not in ENCODERS:
                raise ValueError(f"column {ent['column']!r}: unknown encoder {ent['encoder']!r}")
        if self.reduce_spec["method"] not in REDUCERS:
            raise ValueError(f"unknown reduce method {self.reduce_spec['method']!r}")

    # ------------------------------------------------------------------------- metadata / io
    @property
    def input_columns(self) -> list[str]:
        """Raw columns the pipeline reads."""
        return [c for c, _ in self.inputs]

    @property
    def input_kinds(self) -> dict[str, str]:
        """Column -> numeric | categorical | datetime."""
        return dict(self.inputs)

    @property
    def feature_names(self) -> list[str]:
        return list(self.spec["feature_names"])

    @property
    def n_features(self) -> int:
        return len(self.spec["feature_names"])

    @classmethod
    def load(cls, path: str, hasher: Callable | None = None) -> "FeatureRuntime":
        """Read ``features.json`` + ``features.npz`` from the folder ``path``."""
        spec_path = os.path.join(path, SPEC_FILE)
        if not os.path.isfile(spec_path):
            raise FileNotFoundError(f"{path}: no {SPEC_FILE} (not a saved feature pipeline)")
        with open(spec_path, encoding="utf-8") as fh:
            spec = json.load(fh)
        with np.load(os.path.join(path, ARRAYS_FILE), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls(spec, arrays, hasher=hasher)

    def save(self, path: str) -> None:
        """Write the artifact (plain writes; the offline pipeline writes atomically)."""
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, SPEC_FILE), "w", encoding="utf-8") as fh:
            json.dump(self.spec, fh, indent=2, sort_keys=True)
        with open(os.path.join(path, ARRAYS_FILE), "wb") as fh:
            np.savez(fh, **self.arrays)

    # ------------------------------------------------------------------------------ inputs
    def prepare(self, columns: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Validate and convert the raw columns; returns (prepared columns, rows). See :func:`prepare_columns`."""
        hashing_only = {e["column"] for e in self.categorical if e["encoder"] == "hashing"}
        return prepare_columns(columns, self.inputs, hashing_only)

    # --------------------------------------------------------------------------- transform
    def transform(self, columns: dict[str, Any], xp: Any = None) -> Any:
        """Raw columns (name -> array) -> feature matrix ``(rows, n_features)`` float32.

        The matrix is Fortran-ordered (each feature contiguous), in the namespace ``xp`` (NumPy by
        default). Raises :class:`FeatureInputError` naming the column for a missing column, a wrong
        dtype or unparseable datetimes.
        """
        prepared, n = self.prepare(columns)
        return self.transform_prepared(prepared, n, xp)

    def transform_prepared(self, prepared: dict[str, Any], n: int, xp: Any = None, reduce: bool = True) -> Any:
        """:meth:`transform` on the output of :meth:`prepare`; ``reduce=False`` skips PCA / SVD."""
        xp = np if xp is None else xp
        out = xp.zeros((n, self.n_columns), dtype=xp.float32, order="F")
        if n:
            self._fill_numeric(out, prepared, n, xp)
            self._fill_categorical(out, prepared, n, xp)
        if reduce and self.reduce_spec["method"] != "none":
            out = self.apply_reduce(out, xp)
        return out

    # ------------------------------------------------------------------------------ numeric
    def _scaled_fills(self) -> np.ndarray:
        """Each numeric step's imputed value after clipping and scaling (same ops as the arrays)."""
        f = self.params[:, 0].copy()
        np.clip(f, self.params[:, 1], self.params[:, 2], out=f)
        f -= self.params[:, 3]
        f /= self.params[:, 4]
        return f

    def _date_parts_wanted(self) -> dict[str, list[str]]:
        wanted: dict[str, list[str]] = {}
        for ent in self.numeric:
            src = ent["source"]
            if src["op"] == "datepart":
                wanted.setdefault(src["column"], []).append(src["part"])
        return wanted

    def _fill_numeric(self, out: Any, prepared: dict[str, Any], n: int, xp: Any) -> None:
        if not self.numeric:
            return
        chunk = CHUNK_ROWS if xp is np else n
        P = self.params
        wanted = self._date_parts_wanted()
        tables = {("tables", c): day_tables(xp.asarray(prepared[c]), parts, xp) for c, parts in wanted.items()}
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            cache: dict[Any, Any] = dict(tables)
            for i, ent in enumerate(self.numeric):
                vcol, icol = int(ent["value"]), int(ent["indicator"])
                x = source_values(ent["source"], prepared, s, e, xp, cache, wanted)
                m = ~xp.isfinite(x)
                if vcol >= 0:
                    fill, lo, hi, center, scale = (float(v) for v in P[i])
                    if not (lo == -math.inf and hi == math.inf):
                        xp.clip(x, lo, hi, out=x)
                    if center != 0.0:
                        x -= center
                    if scale != 1.0:
                        x /= scale
                    xp.copyto(x, float(self._fill_scaled[i]), where=m)
                    out[s:e, vcol] = x
                if icol >= 0:
                    out[s:e, icol] = m

    # -------------------------------------------------------------------------- categorical
    def _table(self, ent: dict[str, Any], dictionary: np.ndarray) -> np.ndarray:
        """Per dictionary entry (plus the imputed missing value, last) -> output column or value."""
        key = ent["key"]
        ext = np.empty(len(dictionary) + 1, dtype=object)
        ext[:-1] = dictionary
        ext[-1] = ent["fill"]
        enc = ent["encoder"]
        if enc == "hashing":
            b = (hash_strings(ext, int(ent["seed"]), self.hasher) % np.uint32(int(ent["buckets"]))).astype(np.int64)
            return self.arrays[f"{key}_out"][b]
        idx = _lookup(self.arrays[f"{key}_levels"], ext)  # -1 -> last entry: other / unseen
        if enc == "onehot":
            return self.arrays[f"{key}_out"][idx]
        return self.arrays[f"{key}_values"][idx]

    def _row_codes(self, ent: dict[str, Any], p: Any, xp: Any) -> tuple[Any, np.ndarray]:
        """(codes on xp, table) such that ``table[codes]`` is each row's output column / value."""
        if isinstance(p, StringColumn):  # hashing straight from the bytes
            seed, nb = int(ent["seed"]), int(ent["buckets"])
            # a kernel hasher (the offline pipeline's) hashes the bytes where xp keeps its arrays;
            # the NumPy reference hashes on the host
            ns = xp if (xp is not np and self.hasher is not hash_bytes) else np
            data, offs = ns.asarray(p.data), ns.asarray(p.offsets)
            h = ns.asarray(self.hasher(data, offs, seed))
            bucket = (h % np.uint32(nb)).astype(np.int64)
            empty = offs[1:] == offs[:-1]
            if p.missing is not None:
                empty |= ns.asarray(p.missing, dtype=bool)
            fill_b = int(hash_strings([ent["fill"]], seed, self.hasher)[0] % np.uint32(nb))
            bucket[empty] = fill_b
            return xp.asarray(bucket), self.arrays[f"{ent['key']}_out"]
        return xp.asarray(p.codes), self._table(ent, p.values)

    def _fill_categorical(self, out: Any, prepared: dict[str, Any], n: int, xp: Any) -> None:
        flat = out.T.reshape(-1)  # a view: out is Fortran-ordered, so out.T is C-contiguous
        chunk = CHUNK_ROWS if xp is np else max(n, 1)
        for ent in self.categorical:
            codes, table = self._row_codes(ent, prepared[ent["column"]], xp)
            if ent["encoder"] in ("onehot", "hashing"):
                # one 1.0 per row, at flat position column * n + row (rows in blocks: writes stay local)
                table = np.asarray(table, dtype=np.int64)
                gaps = bool((table < 0).any())
                base = xp.asarray(np.where(table >= 0, table * n, -1))
                rows = xp.arange(min(chunk, n), dtype=xp.int64)
                for s in range(0, n, chunk):
                    e = min(n, s + chunk)
                    pos = base[codes[s:e]]
                    r = rows[: e - s] + s
                    if gaps:
                        keep = pos >= 0
                        pos, r = pos[keep], r[keep]
                    pos += r
                    flat[pos] = 1.0
            else:
                out[:, int(ent["out"])] = xp.asarray(table.astype(np.float32))[codes]

    # ------------------------------------------------------------------------------- reduce
    def apply_reduce(self, X: Any, xp: Any = None) -> Any:
        """PCA / truncated SVD: ``(X - mean) @ components.T`` in float64, returned as float32."""
        xp = np if xp is None else xp
        mean = xp.asarray(self.arrays["reduce_mean"])
        comp_t = xp.asarray(np.ascontiguousarray(self.arrays["reduce_components"].T))
        n = X.shape[0]
        Y = xp.empty((n, comp_t.shape[1]), dtype=xp.float32)
        chunk = CHUNK_ROWS if xp is np else max(n, 1)
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            block = X[s:e].astype(xp.float64)
            block -= mean
            Y[s:e] = block @ comp_t
        return Y


def prepare_columns(columns: dict[str, Any], inputs: list[tuple[str, str]],
                    hashing_only: set[str] | frozenset[str] = frozenset()) -> tuple[dict[str, Any], int]:
    """Validate and convert raw columns for ``inputs`` ([(name, kind)]); returns (prepared, rows).

    Numeric -> float array; categorical -> :class:`Encoded` with a canonical dictionary (or the
    :class:`StringColumn` as given, for a column in ``hashing_only``); datetime -> int64 ns.

    Raises
    ------
    FeatureInputError
        A column is absent, has the wrong dtype or shape, or the columns' lengths differ.
    """
    missing = [c for c, _ in inputs if c not in columns]
    if missing:
        need = ", ".join(f"{c} ({k})" for c, k in inputs)
        raise FeatureInputError(f"missing input column{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(repr(c) for c in missing)}; the feature pipeline reads: {need}")
    prepared: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for c, kind in inputs:
        v = columns[c]
        if kind == "numeric":
            p = to_numeric(v, c)
        elif kind == "categorical":
            p = v if (isinstance(v, StringColumn) and c in hashing_only) else encode_categorical(v, c)
        elif kind == "datetime":
            p = to_datetime_ns(v, c)
        else:
            raise FeatureInputError(f"column {c!r}: unknown kind {kind!r}")
        prepared[c] = p
        lengths[c] = _len(p)
    if len(set(lengths.values())) > 1:
        raise FeatureInputError("input columns have different lengths: "
                                + ", ".join(f"{c}={n}" for c, n in lengths.items()))
    if lengths:
        n = next(iter(lengths.values()))
    else:  # a pipeline that reads no column still answers one (empty) row per input row
        first = next(iter(columns.values()), None)
        n = 0 if first is None else int(np.shape(first)[0]) if np.ndim(first) else 0
    return prepared, n


def source_values(src: dict[str, Any], prepared: dict[str, Any], s: int, e: int, xp: Any = np,
                  cache: dict[str, Any] | None = None, parts_wanted: dict[str, list[str]] | None = None) -> Any:
    """Raw float64 values (NaN = missing) of a numeric step's source for rows ``s:e``, on ``xp``.

    ``src`` is ``{"op": "column", "column": c}``, ``{"op": "ratio" | "difference", "a": c1, "b": c2}``
    or ``{"op": "datepart", "column": c, "part": p}``. A ratio with a zero denominator is +/-inf or
    NaN, i.e. missing. The result is a fresh array the caller may modify.
    """
    op = src["op"]
    if op == "column":
        return xp.asarray(prepared[src["column"]][s:e]).astype(xp.float64)
    if op in ("ratio", "difference"):
        a = xp.asarray(prepared[src["a"]][s:e]).astype(xp.float64)
        b = xp.asarray(prepared[src["b"]][s:e]).astype(xp.float64)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if op == "ratio":
                a /= b
            else:
                a -= b
        return a
    if op == "datepart":
        col, part = src["column"], src["part"]
        cache = {} if cache is None else cache
        parts = cache.get(col)
        if parts is None or part not in parts:
            wanted = (parts_wanted or {}).get(col) or [part]
            parts = date_parts(xp.asarray(prepared[col][s:e]), wanted, xp, cache.get(("tables", col)))
            cache[col] = parts
        return parts.pop(part)
    raise ValueError(f"unknown numeric source {op!r}")


def _len(p: Any) -> int:
    if isinstance(p, Encoded):
        return int(p.codes.shape[0])
    if isinstance(p, StringColumn):
        return len(p)
    return int(p.shape[0])


def _rows(prepared: dict[str, Any]) -> int:
    for p in prepared.values():
        return _len(p)
    return 0


def subset(prepared: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    """Prepared columns restricted to ``rows`` (an index array)."""
    out: dict[str, Any] = {}
    for c, p in prepared.items():
        if isinstance(p, Encoded):
            out[c] = Encoded(p.codes[rows], p.values)
        elif isinstance(p, StringColumn):
            obj = p.to_objects()[rows]
            out[c] = encode_categorical(obj, c)
        else:
            out[c] = p[rows]
    return out
