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
    from engine.features.runtime import FeatureInputError, FeatureRuntime
except ImportError:  # copied next to this file in a Triton model version folder
    from features_runtime import FeatureInputError, FeatureRuntime  # type: ignore[no-redef]

FORMAT_VERSION = 1


class ModelFormatError(ValueError):
    """The model folder is missing a file, has a wrong hash or an unknown format version."""


class InputError(ValueError):
    """A request's columns are missing, of the wrong type or shape (the message names the column)."""


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_meta(folder: str) -> dict[str, Any]:
    """``model.json`` of a packaged model folder, with its format version checked."""
    meta_path = os.path.join(folder, "model.json")
    if not os.path.isfile(meta_path):
        raise ModelFormatError(f"{folder}: no model.json (not a packaged model folder, or an incomplete one)")
    with open(meta_path, encoding="utf-8") as fh:
        meta = json.load(fh)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(f"{meta_path}: format_version {meta.get('format_version')!r}, "
                               f"this runtime reads {FORMAT_VERSION}")
    for key in ("task", "input_columns", "onnx"):
        if key not in meta:
            raise ModelFormatError(f"{meta_path}: no {key!r} entry")
    return meta


def verify_files(folder: str, meta: dict[str, Any]) -> None:
    """Check every file listed in ``meta["files"]`` exists and matches its SHA-256."""
    files = meta.get("files") or {}
    if meta["onnx"]["file"] not in files:
        raise ModelFormatError(f"{folder}: model.json does not list the hash of {meta['onnx']['file']}")
    for rel, digest in sorted(files.items()):
        p = os.path.join(folder, rel)
        if not os.path.isfile(p):
            raise ModelFormatError(f"{folder}: file {rel} is missing")
        if _sha256(p) != digest:
            raise ModelFormatError(f"{folder}: file {rel} does not match its recorded SHA-256")


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
        onnx = meta["onnx"]
        self._input = onnx.get("input", "input")
        self._output = onnx.get("probability_output") if self.task == "binary" else None
        self._output = self._output or onnx.get("score_output") or onnx.get("probability_output")
        if not self._output:
            raise ModelFormatError("model.json: onnx has neither probability_output nor score_output")

    @classmethod
    def load(cls, folder: str, verify: bool = True, intra_op_threads: int = 1) -> "PipelineRuntime":
        """Read ``folder`` (model.json, model.onnx, features/); check hashes when ``verify``.

        Raises
        ------
        ModelFormatError
            No model.json, an unknown format version, a missing file or a hash mismatch.
        """
        folder = str(folder)
        meta = read_meta(folder)
        if verify:
            verify_files(folder, meta)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        session = ort.InferenceSession(os.path.join(folder, meta["onnx"]["file"]), sess_options=opts,
                                       providers=["CPUExecutionProvider"])
        features = FeatureRuntime.load(os.path.join(folder, "features"))
        shape = session.get_inputs()[0].shape
        width = shape[1] if len(shape) == 2 else None
        if isinstance(width, int) and width != features.n_features:
            raise ModelFormatError(f"{folder}: the feature pipeline outputs {features.n_features} features but "
                                   f"the ONNX model expects {width}")
        return cls(meta, features, session)

    @property
    def n_features(self) -> int:
        return int(self.features.n_features)

    def features_matrix(self, columns: dict[str, Any]) -> np.ndarray:
        """The estimator's input matrix (float32, C order) for raw ``columns``.

        Raises
        ------
        InputError
            A missing column (all of them named), columns of different lengths, or a value of the wrong
            type (the column named).
        """
        missing = [c for c in self.input_columns if c not in columns]
        if missing:
            need = ", ".join(f"{c} ({self.input_kinds[c]})" for c in self.input_columns)
            raise InputError(f"missing input column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(repr(c) for c in missing)}; the model reads: {need}")
        try:
            X = self.features.transform({c: columns[c] for c in self.input_columns})
        except FeatureInputError as exc:
            raise InputError(str(exc)) from None
        return np.ascontiguousarray(X, dtype=np.float32)

    def score(self, X: np.ndarray) -> np.ndarray:
        """Estimator output for a feature matrix: P(positive) for binary, the prediction for regression."""
        if X.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        out = self.session.run([self._output], {self._input: np.ascontiguousarray(X, dtype=np.float32)})[0]
        if isinstance(out, list):  # ZipMap-style list of dicts
            out = np.array([[d[0], d[1]] for d in out], dtype=np.float64)
        out = np.asarray(out, dtype=np.float64)
        if self.task == "binary":
            return out[:, 1] if out.ndim == 2 and out.shape[1] == 2 else out.reshape(-1)
        return out.reshape(-1)

    def scores(self, columns: dict[str, Any]) -> np.ndarray:
        """P(positive) (binary) or the prediction (regression) for raw ``columns``."""
        return self.score(self.features_matrix(columns))

    def decide(self, s: np.ndarray) -> np.ndarray:
        """Labels for scores: the original target labels when known (binary), else 0/1; regression: ``s``."""
        if self.task != "binary":
            return s.copy()
        hit = (s >= float(self.threshold if self.threshold is not None else 0.5)).astype(np.int64)
        return self.labels[hit] if self.labels is not None else hit

    def predict(self, columns: dict[str, Any]) -> dict[str, np.ndarray]:
        """``{"score": float64[N], "label": ...[N]}``: probability of the positive class and its label
        (binary; labels are the original target values when known), or the prediction (regression)."""
        s = self.scores(columns)
        return {"score": s, "label": self.decide(s)}
