"""engine.features.runtime: the NumPy-only apply module that is copied next to served models."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.features import FeaturePipeline
from engine.features import runtime as rt
from tests.fake_device import DeviceArray, FakeDevice

RUNTIME_FILE = Path(rt.__file__)

#: Names the runtime may use through ``xp``: all of them exist in CuPy with the same meaning.
CUPY_API = {"asarray", "zeros", "empty", "arange", "where", "isfinite", "clip", "copyto", "put", "float32",
            "float64", "int64", "nan"}


def fitted(n=500, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "x": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "k": rng.integers(0, 9, n),
        "c": rng.choice(["a", "b", "c", None], n).astype(object),
        "h": np.array([f"v{i}" for i in rng.integers(0, 400, n)], dtype=object),
        "d": pd.Series(pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 10**8, n), unit="s")),
    })
    y = rng.integers(0, 2, n).astype(float)
    fp = FeaturePipeline(encoders={"h": "hashing"}, hashing_buckets=8,
                         derive=[{"name": "xk", "op": "ratio", "a": "x", "b": "k"}]).fit(df, y)
    return fp, df


def raw_columns(fp, df):
    cols = {}
    for c, kind in fp.input_kinds_.items():
        s = df[c]
        if kind == "numeric":
            cols[c] = s.to_numpy(dtype=np.float64)
        elif kind == "categorical":
            cols[c] = np.array([None if pd.isna(v) else v for v in s], dtype=object)
        else:
            cols[c] = s.to_numpy(dtype="datetime64[ns]")
    return cols


def test_runtime_imports_only_numpy_and_the_standard_library():
    tree = ast.parse(RUNTIME_FILE.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    assert roots <= {"__future__", "json", "math", "os", "warnings", "typing", "numpy"}, roots


def test_a_verbatim_copy_runs_alone_and_gives_the_same_features(tmp_path):
    fp, df = fitted()
    fp.save(tmp_path / "features")
    shutil.copy(RUNTIME_FILE, tmp_path / "features_runtime.py")
    cols = raw_columns(fp, df)
    np.savez(tmp_path / "cols.npz", **{k: v.astype(str) if v.dtype == object else v for k, v in cols.items()})
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import numpy as np
        import features_runtime as fr
        with np.load({str(tmp_path / 'cols.npz')!r}) as z:
            cols = {{k: z[k] for k in z.files}}
        for k, v in cols.items():
            if v.dtype.kind == "U":
                cols[k] = np.where(v == "None", "", v).astype(object)
        X = fr.FeatureRuntime.load({str(tmp_path / 'features')!r}).transform(cols)
        np.save({str(tmp_path / 'out.npy')!r}, X)
        assert not {{"pandas", "numba", "sklearn", "engine"}} & set(m.split(".")[0] for m in sys.modules), "heavy import"
    """)
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), fp.transform(df))


def test_runtime_under_numpy_1_26_gives_the_same_features(tmp_path):
    """The serving environment (NumPy 1.26, see notes/FACTS.md) computes bit-identical features."""
    py = Path(rt.__file__).resolve().parents[2] / ".venv-triton" / "bin" / "python"
    if not py.is_file():
        pytest.skip(f"no serving environment at {py} (created by the Triton setup)")
    fp, df = fitted()
    fp.save(tmp_path / "features")
    shutil.copy(RUNTIME_FILE, tmp_path / "features_runtime.py")
    cols = raw_columns(fp, df)
    cols = {k: (np.array([b"" if v is None else v.encode() for v in a], dtype="S") if a.dtype == object else a)
            for k, a in cols.items()}
    np.savez(tmp_path / "cols.npz", **cols)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import numpy as np
        assert np.__version__.startswith("1."), np.__version__
        import features_runtime as fr
        with np.load({str(tmp_path / 'cols.npz')!r}) as z:
            cols = {{k: z[k] for k in z.files}}
        cols = {{k: (v.astype(object) if v.dtype.kind == "S" else v) for k, v in cols.items()}}
        np.save({str(tmp_path / 'out.npy')!r}, fr.FeatureRuntime.load({str(tmp_path / 'features')!r}).transform(cols))
    """)
    proc = subprocess.run([str(py), "-I", "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), fp.transform(df))


class RecordingNamespace:
    """NumPy behind an ``xp`` that records which names the runtime reaches for."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __getattr__(self, name):
        self.used.add(name)
        return getattr(np, name)


def test_array_namespace_path_uses_only_cupy_functions_and_matches_numpy():
    fp, df = fitted()
    xp = RecordingNamespace()
    cols = raw_columns(fp, df)
    got = fp.runtime_.transform(cols, xp=xp)  # also the single-block path a GPU takes
    assert xp.used <= CUPY_API, xp.used - CUPY_API
    np.testing.assert_array_equal(got, fp.runtime_.transform(cols))


def test_device_path_keeps_host_and_device_arrays_apart():
    """What a GPU run does (xp=cupy): numeric arrays moved once, codes moved, no host/device mixing."""
    fp, df = fitted()
    cols = raw_columns(fp, df)
    got = fp.runtime_.transform(cols, xp=FakeDevice())
    assert isinstance(got, DeviceArray) and got.flags.f_contiguous
    np.testing.assert_array_equal(np.asarray(got), fp.runtime_.transform(cols))


def test_output_is_float32_fortran_ordered():
    fp, df = fitted()
    X = fp.transform(df)
    assert X.dtype == np.float32 and X.flags.f_contiguous and X.shape == (len(df), len(fp.feature_names_))


def test_empty_batch_gives_zero_rows():
    fp, df = fitted()
    X = fp.runtime_.transform({c: v[:0] for c, v in raw_columns(fp, df).items()})
    assert X.shape == (0, len(fp.feature_names_))


def test_blocks_of_rows_give_the_same_result_as_one_block(monkeypatch):
    fp, df = fitted(n=700)
    whole = fp.transform(df)
    monkeypatch.setattr(rt, "CHUNK_ROWS", 64)
    np.testing.assert_array_equal(fp.transform(df), whole)


# ------------------------------------------------------------------------------- date parts
def test_date_parts_equal_pandas_over_five_centuries():
    rng = np.random.default_rng(3)
    ns = rng.integers(-8 * 10**18, 7 * 10**18, 20000)
    ns[:3] = [0, -1, rt.NAT]
    parts = rt.date_parts(ns, rt.DATE_PARTS)
    ts = pd.to_datetime(ns[ns != rt.NAT])
    ok = ns != rt.NAT
    days = np.floor_divide(ns[ok], 86_400 * 10**9)
    expected = {"year": ts.year, "month": ts.month, "day": ts.day, "dayofweek": ts.dayofweek,
                "dayofyear": ts.dayofyear, "hour": ts.hour, "epoch_days": days}
    for p, ref in expected.items():
        np.testing.assert_array_equal(parts[p][ok], np.asarray(ref, dtype=np.float64), err_msg=p)
        assert np.isnan(parts[p][2])


def test_date_parts_by_lookup_table_equal_direct_computation():
    rng = np.random.default_rng(4)
    ns = rng.integers(-3 * 10**18, 3 * 10**18, 5000)
    ns[7] = rt.NAT
    direct = rt.date_parts(ns, rt.DATE_PARTS)
    tables = rt.day_tables(ns, rt.DATE_PARTS)
    assert tables is not None
    by_table = rt.date_parts(ns, rt.DATE_PARTS, tables=tables)
    for p in rt.DATE_PARTS:
        np.testing.assert_array_equal(by_table[p], direct[p], err_msg=p)


def test_iso_strings_with_offsets_are_read_as_utc():
    ns = rt.to_datetime_ns(np.array(["2024-05-01T12:00:00+02:00", "2024-05-01 10:00", "", None], dtype=object))
    assert ns[0] == ns[1] and ns[2] == rt.NAT and ns[3] == rt.NAT


# ------------------------------------------------------------------------------ categoricals
@pytest.mark.parametrize("value, text", [
    ("abc", "abc"), (b"abc", "abc"), (3, "3"), (np.int64(3), "3"), (3.0, "3"), (2.5, "2.5"), (True, "True"),
    ("", None), (b"", None), (None, None), (float("nan"), None), (pd.NA, None), (pd.NaT, None),
])
def test_canonical_category_text(value, text):
    assert rt.canonical_category(value) == text


def test_mixed_object_column_is_encoded_without_error():
    enc = rt.encode_categorical(np.array(["a", 1, None, b"a", 1.0, float("nan"), ""], dtype=object))
    got = [None if c < 0 else enc.values[c] for c in enc.codes]
    assert got == ["a", "1", None, "a", "1", None, None]


def test_invalid_utf8_bytes_hash_like_their_raw_bytes():
    raw = b"\xff\xfeab"
    enc = rt.encode_categorical(np.array([raw], dtype=object))
    data, offsets = rt.strings_to_buffer(enc.values)
    assert data.tobytes() == raw


def test_string_column_hashing_equals_dictionary_hashing():
    fp, df = fitted()
    values = df["h"].tolist()
    values[5] = ""
    data, offsets = rt.strings_to_buffer(["" if v is None else v for v in values])
    cols = raw_columns(fp, df)
    by_dictionary = fp.runtime_.transform({**cols, "h": np.array(values, dtype=object)})
    by_bytes = fp.runtime_.transform({**cols, "h": rt.StringColumn(data, offsets)})
    np.testing.assert_array_equal(by_bytes, by_dictionary)


def test_numeric_object_column_with_none_is_accepted():
    x = rt.to_numeric(np.array([1, None, 2.5], dtype=object), "x")
    np.testing.assert_array_equal(x, [1.0, np.nan, 2.5])


def test_two_dimensional_input_is_rejected_with_the_column_name():
    with pytest.raises(rt.FeatureInputError, match="column 'x': expected a 1-D array"):
        rt.to_numeric(np.zeros((3, 2)), "x")


def test_arrow_strings_with_missing_values_keep_their_codes_and_missing_is_minus_one():
    """An Arrow-backed string column with missing values is encoded once: missing rows are code -1 and the
    dictionary holds no null entry, so the runtime keeps Arrow's codes instead of remapping every row."""
    from engine.features.frame import encode_series

    rng = np.random.default_rng(3)
    words = np.array(["b", "a", "c", "é", "dd"], dtype=object)
    raw = words[rng.integers(0, len(words), 2000)]
    raw[rng.random(2000) < 0.1] = None
    s = pd.Series(raw, dtype="string[pyarrow]")
    enc = encode_series(s)
    assert None not in enc.values.tolist()
    codes = np.asarray(enc.codes)
    np.testing.assert_array_equal(codes == -1, s.isna().to_numpy())
    np.testing.assert_array_equal(enc.values[codes[codes >= 0]], raw[codes >= 0])
    merged = rt.encode_categorical(enc, "w")
    assert merged.codes is enc.codes  # already canonical: no pass over the rows
    # and the pipeline's features equal those of the same column as plain Python objects
    frame = pd.DataFrame({"w": s, "x": rng.normal(size=2000)})
    kinds = {"w": "categorical", "x": "numeric"}
    a = FeaturePipeline(onehot_max_levels=10).fit_transform(frame, kinds=kinds)
    b = FeaturePipeline(onehot_max_levels=10).fit_transform(frame.astype({"w": object}), kinds=kinds)
    np.testing.assert_array_equal(a, b)


def test_datetime_columns_of_any_unit_give_the_same_nanoseconds():
    from engine.features.frame import datetime_values

    t = pd.Series(pd.to_datetime(["2020-01-02 03:04:05", None, "1999-12-31 23:59:59"]))
    want = rt.to_datetime_ns(t.astype("datetime64[ns]").to_numpy(), "t")
    for unit in ("s", "ms", "us", "ns"):
        got = rt.to_datetime_ns(datetime_values(t.astype(f"datetime64[{unit}]")), "t")
        np.testing.assert_array_equal(got, want)
    assert want[1] == rt.NAT
