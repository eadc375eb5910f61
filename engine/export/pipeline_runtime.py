"""Raw columns in, score and label out: the fitted features (JSON + NPZ) then the ONNX estimator.

Self-contained on purpose: it imports only the standard library, NumPy and onnxruntime, because it is
copied into the Triton model repository and runs there under a separate NumPy-1.26 environment. The
embedded predictor (``engine.load``) uses the very same class, so served and offline predictions cannot
diverge. Folder layout: docs/model-format.md.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

try:  # inside the project
    from engine.features.runtime import FeatureRuntime
except ImportError:  # copied next to this file in a Triton model version folder
    from features_runtime import FeatureRuntime  # type: ignore[no-redef]

FORMAT_VERSION = 1


class ModelFormatError(ValueError):
    """The model folder is missing a file, has a wrong hash or an unknown format version."""


class InputError(ValueError):
    """A request's columns are missing, of the wrong type or shape."""


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class PipelineRuntime:
    """A packaged model: ``PipelineRuntime.load(folder).predict({column: array})``."""

    def __init__(self, meta: dict[str, Any], features: Any, session: Any) -> None:
        self.meta = meta
        self.features = features
        self.session = session
        self.task = meta["task"]
        self.threshold = meta.get("threshold")
        self.input_columns = [c["name"] for c in meta["input_columns"]]
        self.input_kinds = {c["name"]: c["kind"] for c in meta["input_columns"]}
        labels = meta.get("labels") or None
        self.labels = None if labels is None else np.array([labels["0"], labels["1"]], dtype=object)

    @classmethod
    def load(cls, folder: str, verify: bool = True, intra_op_threads: int = 1) -> "PipelineRuntime":
        """Read ``folder`` (model.json, model.onnx, features/); check hashes when ``verify``."""
        meta_path = os.path.join(folder, "model.json")
        if not os.path.isfile(meta_path):
            raise ModelFormatError(f"{folder}: no model.json (not a packaged model folder)")
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
        if meta.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(f"{meta_path}: format_version {meta.get('format_version')!r}, "
                                   f"this runtime reads {FORMAT_VERSION}")
        if verify:
            for rel, digest in (meta.get("files") or {}).items():
                p = os.path.join(folder, rel)
                if not os.path.isfile(p):
                    raise ModelFormatError(f"{folder}: file {rel} is missing")
                if _sha256(p) != digest:
                    raise ModelFormatError(f"{folder}: file {rel} does not match its recorded SHA-256")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(os.path.join(folder, meta["onnx"]["file"]), sess_options=opts,
                                       providers=["CPUExecutionProvider"])
        features = FeatureRuntime.load(os.path.join(folder, "features"))
        return cls(meta, features, session)

    def features_matrix(self, columns: dict[str, Any]) -> np.ndarray:
        missing = [c for c in self.input_columns if c not in columns]
        if missing:
            raise InputError(f"missing input column(s): {', '.join(missing)}; expected {self.input_columns}")
        n = {len(np.asarray(columns[c]).reshape(-1)) for c in self.input_columns}
        if len(n) > 1:
            raise InputError(f"input columns have different lengths: {sorted(n)}")
        cols = {c: np.asarray(columns[c]).reshape(-1) for c in self.input_columns}
        X = self.features.transform(cols)
        return np.ascontiguousarray(X, dtype=np.float32)

    def score(self, X: np.ndarray) -> np.ndarray:
        """Estimator output for a feature matrix: P(positive) for binary, the prediction for regression."""
        onnx = self.meta["onnx"]
        if X.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        names = [o for o in (onnx.get("probability_output"), onnx.get("score_output")) if o]
        out = self.session.run(names, {onnx["input"]: X})[0]
        if isinstance(out, list):  # ZipMap-style list of dicts
            out = np.array([[d[0], d[1]] for d in out], dtype=np.float64)
        out = np.asarray(out, dtype=np.float64)
        if self.task == "binary":
            return out[:, 1] if out.ndim == 2 and out.shape[1] == 2 else out.reshape(-1)
        return out.reshape(-1)

    def predict(self, columns: dict[str, Any]) -> dict[str, np.ndarray]:
        """``{"score": float64[N], "label": ...[N]}``: probability of the positive class and its label
        (binary; labels are the original target values when known), or the prediction (regression)."""
        s = self.score(self.features_matrix(columns))
        if self.task != "binary":
            return {"score": s, "label": s.copy()}
        hit = (s >= float(self.threshold if self.threshold is not None else 0.5)).astype(np.int64)
        label = self.labels[hit] if self.labels is not None else hit
        return {"score": s, "label": label}
