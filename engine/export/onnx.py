"""Convert a fitted estimator to ONNX and verify the conversion against the original.

scikit-learn estimators (logistic / linear models, random forests, histogram gradient boosting, ...)
go through skl2onnx with a float32 input named ``input`` and plain probability tensors (no ZipMap);
Trident's own gradient-boosted trees through ``engine.train.gbdt_onnx.to_onnx``; cuML estimators through
their scikit-learn twin (``as_sklearn()``). A conversion is never trusted: :func:`verify` runs the ONNX
model with onnxruntime on held-out rows and compares it with the original estimator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import GateFailed, TridentError

INPUT_NAME = "input"
#: Default parity tolerance: largest |ONNX - original| allowed on a probability (binary tasks) or,
#: for regression, on prediction / max(1, |prediction|).
DEFAULT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class OnnxModel:
    """Serialized ONNX bytes and the names of its input and outputs (model.json ``onnx`` record)."""

    data: bytes
    input: str
    probability_output: str | None
    score_output: str | None

    def record(self, file: str = "model.onnx") -> dict[str, Any]:
        return {"file": file, "input": self.input, "probability_output": self.probability_output,
                "score_output": self.score_output}


def _is_trident_gbdt(estimator: Any) -> bool:
    return type(estimator).__module__.startswith("engine.train.gbdt")


def _as_sklearn(estimator: Any) -> Any:
    if type(estimator).__module__.startswith("cuml"):
        if hasattr(estimator, "as_sklearn"):
            return estimator.as_sklearn()
        raise TridentError(f"cannot export the cuML estimator {type(estimator).__name__} to ONNX: it has no "
                           f"as_sklearn() (upgrade cuML or choose another candidate)")
    return estimator


def convert(estimator: Any, n_features: int, task: str, name: str = "trident_model",
            target_opset: int | None = None) -> bytes:
    """The ONNX bytes of ``estimator`` taking float32 ``input[N, n_features]``.

    The graph name is fixed (``name``) so that converting the same model twice gives identical bytes.
    """
    import onnx

    if _is_trident_gbdt(estimator):
        try:
            from engine.train.gbdt_onnx import to_onnx as gbdt_to_onnx
        except ImportError as exc:
            raise TridentError(f"cannot export {type(estimator).__name__} to ONNX: its converter "
                               f"(engine.train.gbdt_onnx) is not importable ({exc})") from None

        model = gbdt_to_onnx(estimator, n_features)
        if isinstance(model, (bytes, bytearray)):
            model = onnx.load_from_string(bytes(model))
    else:
        model = _convert_sklearn(_as_sklearn(estimator), n_features, task, name, target_opset)
    model.graph.name = name
    return model.SerializeToString()


def _convert_sklearn(estimator: Any, n_features: int, task: str, name: str, target_opset: int | None) -> Any:
    import warnings

    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    options = None
    if task == "binary":
        if not hasattr(estimator, "predict_proba"):
            raise TridentError(f"{type(estimator).__name__} has no predict_proba: a binary candidate must "
                               f"output probabilities")
        options = {id(estimator): {"zipmap": False}}
    is_cat = getattr(estimator, "is_categorical_", None)
    if is_cat is not None and bool(np.any(is_cat)):
        raise TridentError("HistGradientBoosting with categorical_features converts to a wrong ONNX model; "
                           "encode categories in the features instead")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return convert_sklearn(estimator, name=name,
                                   initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
                                   options=options, target_opset=target_opset)
    except Exception as exc:
        raise TridentError(f"cannot convert {type(estimator).__name__} to ONNX: {exc}") from exc


def session(data: bytes, threads: int = 1) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


def describe_outputs(sess: Any, task: str) -> tuple[str, str | None, str | None]:
    """(input name, probability output, score output) of a converted model.

    Binary: the float output named like "probabilities" (else the float output with 2 columns).
    Regression: the first float output.
    """
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise TridentError(f"the ONNX model has {len(inputs)} inputs; expected one float32 matrix")
    floats = [o for o in sess.get_outputs() if o.type == "tensor(float)" or o.type == "tensor(double)"]
    if not floats:
        raise TridentError("the ONNX model has no float output")
    if task != "binary":
        return inputs[0].name, None, floats[0].name
    named = [o for o in floats if "prob" in o.name.lower()]
    two = [o for o in floats if o.shape and len(o.shape) == 2 and o.shape[-1] == 2]
    pick = (named or two or floats)[0]
    return inputs[0].name, pick.name, None


def onnx_scores(sess: Any, X: np.ndarray, task: str, outputs: tuple[str, str | None, str | None]) -> np.ndarray:
    """P(positive) (binary) or the prediction (regression) from the ONNX model, float64."""
    inp, prob, score = outputs
    out = np.asarray(sess.run([prob or score], {inp: np.ascontiguousarray(X, dtype=np.float32)})[0],
                     dtype=np.float64)
    if task == "binary" and out.ndim == 2 and out.shape[1] == 2:
        return out[:, 1]
    return out.reshape(-1)


def estimator_scores(estimator: Any, X: Any, task: str) -> np.ndarray:
    """P(positive) (binary) or the prediction (regression) from the original estimator, float64."""
    from engine.backend import to_numpy

    if task == "binary":
        out = np.asarray(to_numpy(estimator.predict_proba(X)), dtype=np.float64)
        return out[:, 1] if out.ndim == 2 else out.reshape(-1)
    return np.asarray(to_numpy(estimator.predict(X)), dtype=np.float64).reshape(-1)


def verify(data: bytes, estimator: Any, X: Any, task: str, tolerance: float = DEFAULT_TOLERANCE,
           reference: np.ndarray | None = None) -> dict[str, Any]:
    """Compare the ONNX model with ``estimator`` on the rows of ``X``; raise GateFailed beyond ``tolerance``.

    The difference is ``|ONNX - original|`` on P(positive) for a binary task and
    ``|ONNX - original| / max(1, |original|)`` for regression. ``reference`` (the original's scores on
    ``X``) saves recomputing them.

    Returns
    -------
    dict
        The parity record: rows compared, tolerance, largest difference, its row and both values.

    Raises
    ------
    GateFailed
        Naming the largest difference, the row where it occurs and the tolerance.
    """
    from engine.backend import to_numpy

    Xh = np.ascontiguousarray(to_numpy(X), dtype=np.float32)
    if Xh.shape[0] == 0:
        raise GateFailed("ONNX parity: no held-out rows to compare the converted model on")
    sess = session(data)
    outputs = describe_outputs(sess, task)
    got = onnx_scores(sess, Xh, task, outputs)
    want = estimator_scores(estimator, X, task) if reference is None else np.asarray(reference, np.float64)
    if got.shape != want.shape:
        raise GateFailed(f"ONNX parity: the ONNX model returned {got.shape[0]} scores for {want.shape[0]} rows")
    diff = np.abs(got - want)
    if task != "binary":
        diff = diff / np.maximum(1.0, np.abs(want))
    diff = np.where(np.isnan(diff), np.inf, diff)
    row = int(np.argmax(diff))
    worst = float(diff[row])
    rec = {"rows": int(Xh.shape[0]), "tolerance": float(tolerance), "max_abs_diff": worst, "row": row,
           "original": float(want[row]), "onnx": float(got[row]),
           "measure": "probability" if task == "binary" else "relative to max(1, |prediction|)"}
    if not worst <= tolerance:
        raise GateFailed(f"ONNX parity failed: largest difference {worst:.3g} at held-out row {row} "
                         f"(original {want[row]:.6g}, ONNX {got[row]:.6g}) exceeds the tolerance "
                         f"{tolerance:g} (kpi.onnx_max_abs_diff)")
    return rec


def export(estimator: Any, X_holdout: Any, task: str, tolerance: float = DEFAULT_TOLERANCE,
           name: str = "trident_model") -> tuple[OnnxModel, dict[str, Any]]:
    """Convert ``estimator`` and verify it on ``X_holdout``: (the ONNX model, the parity record)."""
    n_features = int(X_holdout.shape[1])
    data = convert(estimator, n_features, task, name=name)
    parity = verify(data, estimator, X_holdout, task, tolerance)
    inp, prob, score = describe_outputs(session(data), task)
    return OnnxModel(data, inp, prob, score), parity
