"""Request tensors <-> PipelineRuntime columns, for the python-backend models of a Trident pipeline.

Copied next to ``model.py`` in every exported version folder. NumPy only (it runs under the serving
environment's NumPy 1.26), no Triton import: the decoding and encoding are tested without a server.
Conventions (docs/serving.md): one tensor per raw column, shape ``[batch, 1]``; numeric columns FP64
(or FP32), NaN = missing; categorical and datetime columns BYTES (UTF-8), an empty string = missing.
"""
from __future__ import annotations

import json
import os
import re
import sys

import numpy as np

MAX_MESSAGE = 300
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:/[^\s/'\":,;()\[\]]+){2,}/?")
_TRACE = re.compile(r"Traceback \(most recent call last\)")


class RequestError(ValueError):
    """A request the model cannot answer; the message goes back to the client as is."""


def clean_message(exc: BaseException | str) -> str:
    """One line, no traceback, no file paths, bounded length."""
    text = str(exc) if not isinstance(exc, str) else exc
    if _TRACE.search(text):  # keep the exception line that ends a traceback
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        text = lines[-1] if lines else ""
    text = _PATH.sub("<path>", text)
    text = " ".join(text.split())
    if not text:
        text = type(exc).__name__ if not isinstance(exc, str) else "error"
    return text[:MAX_MESSAGE]


def decode_column(array: np.ndarray | None, kind: str, column: str) -> np.ndarray:
    """One request tensor (``[batch, 1]``) -> the 1-D column handed to PipelineRuntime.

    Numeric: float64 (NaN = missing). Categorical / datetime: the BYTES tensor's object array as is
    (the feature runtime reads UTF-8 bytes; ``b""`` = missing; datetimes as ISO-8601 text).
    Raises :class:`RequestError` naming the column.
    """
    if array is None:
        raise RequestError(f"missing input column {column!r}")
    a = np.asarray(array)
    if a.ndim != 2 or a.shape[1] != 1:
        raise RequestError(f"input column {column!r}: shape {list(a.shape)}, expected [batch, 1]")
    a = a.reshape(-1)
    if kind == "numeric":
        if a.dtype.kind not in "fiub":
            raise RequestError(f"input column {column!r}: expected numbers, got {a.dtype}")
        return a.astype(np.float64, copy=False)
    if a.dtype.kind not in "OSU":
        raise RequestError(f"input column {column!r}: expected text (BYTES), got {a.dtype}")
    return a


def concat_columns(parts: list[dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], list[int]]:
    """Stack the columns of several requests; return them and each request's row count."""
    sizes = [len(next(iter(p.values()))) if p else 0 for p in parts]
    if len(parts) == 1:
        return parts[0], sizes
    return {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}, sizes


def split_rows(values: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    bounds = np.cumsum([0] + sizes)
    return [values[bounds[i]:bounds[i + 1]] for i in range(len(sizes))]


def encode_output(values: np.ndarray, triton_type: str) -> np.ndarray:
    """A 1-D output -> the ``[batch, 1]`` array for a Triton tensor of ``triton_type``."""
    v = np.asarray(values)
    if triton_type in ("TYPE_STRING", "BYTES"):
        enc = np.empty(v.shape[0], dtype=object)
        for i, x in enumerate(v):
            enc[i] = x if isinstance(x, bytes) else str(x).encode("utf-8")
        return enc.reshape(-1, 1)
    if triton_type == "TYPE_INT64":
        return v.astype(np.int64).reshape(-1, 1)
    if triton_type == "TYPE_FP32":
        return v.astype(np.float32).reshape(-1, 1)
    return v.astype(np.float64).reshape(-1, 1)


def output_types(model_config: dict) -> dict[str, str]:
    """``{output name: Triton type}`` from the model config handed to ``initialize``."""
    return {o["name"]: o["data_type"] for o in model_config.get("output", [])}


def columns_from_config(model_config: dict) -> list[dict[str, str]]:
    """``[{"name", "kind", "tensor"}]`` recorded by the exporter in the config's parameters."""
    raw = model_config.get("parameters", {}).get("trident.columns", {}).get("string_value")
    if not raw:
        raise ValueError("model config has no trident.columns parameter (not exported by Trident)")
    return json.loads(raw)


def config_parameter(model_config: dict, key: str, default: str = "") -> str:
    return model_config.get("parameters", {}).get(key, {}).get("string_value", default)


def predict_matrix(runtime: object, X: np.ndarray) -> dict[str, np.ndarray]:
    """Score and label from an estimator input matrix (the ensemble's second step)."""
    s = runtime.score(X)
    return {"score": s, "label": runtime.decide(s)}


def load_runtime(folder: str, intra_op_threads: int = 1) -> object:
    """PipelineRuntime of the version folder, imported from the copy beside this file."""
    if folder not in sys.path:
        sys.path.insert(0, folder)
    from pipeline_runtime import PipelineRuntime

    return PipelineRuntime.load(folder, verify=True, intra_op_threads=intra_op_threads)


def read_sample(folder: str) -> dict[str, np.ndarray]:
    """The held-out rows stored with the version (``sample.json``) as PipelineRuntime columns."""
    with open(os.path.join(folder, "sample.json"), encoding="utf-8") as fh:
        sample = json.load(fh)
    cols = {}
    for spec in sample["columns"]:
        values = sample["values"][spec["name"]]
        if spec["kind"] == "numeric":
            cols[spec["name"]] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            cols[spec["name"]] = np.array(values, dtype=object)
    return cols


def self_check(folder: str) -> dict:
    """Predict ``sample.json`` with the version folder's own runtime (run in the serving environment)."""
    rt = load_runtime(folder)
    out = rt.predict(read_sample(folder))
    label = out["label"]
    return {"numpy": np.__version__, "score": [float(x) for x in out["score"]],
            "label": [x.item() if hasattr(x, "item") else x for x in label]}


if __name__ == "__main__":  # python -I triton_io.py FOLDER: print self_check(FOLDER) as JSON
    print(json.dumps(self_check(os.path.abspath(sys.argv[1]))))
