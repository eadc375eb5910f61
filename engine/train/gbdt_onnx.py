"""Export Trident's gradient-boosted trees to ONNX (``ai.onnx.ml`` TreeEnsemble operators).

The graph takes one float32 input ``input[N, n_features]`` and, like skl2onnx's converters with
``zipmap=False``, returns:

- classifier (``TreeEnsembleClassifier``, ``post_transform=LOGISTIC``): ``label`` [N] (the class labels,
  int64 or string) and ``probabilities`` [N, 2] float32, columns in ``classes_`` order;
- regressor (``TreeEnsembleRegressor``): ``variable`` [N, 1] float32.

Exactness. A split is ``x <= threshold`` (``BRANCH_LEQ``) on float32 values with a float32 threshold,
which is exactly the in-process test (the model compares float32 features with float32 bin edges; a
split that sends every value left has threshold ``+inf``). NaN follows the learned default direction
through ``nodes_missing_value_tracks_true`` (1 = NaN goes to the "true", i.e. left, child). What
differs is only the summation of the leaf values (float32 in onnxruntime, float64 in process): the
probabilities agree to about 1e-6. :func:`verify_onnx` measures it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["INPUT_NAME", "to_onnx", "verify_onnx"]

INPUT_NAME = "input"
ML_OPSET = 3
ONNX_OPSET = 17


def _tree_attributes(trees: dict[str, np.ndarray]) -> dict[str, Any]:
    """Node and leaf attribute lists shared by both TreeEnsemble operators."""
    offsets = np.asarray(trees["offsets"], np.int64)
    n = trees["feature"].shape[0]
    ends = np.append(offsets[1:], n)
    tree_id = np.repeat(np.arange(offsets.size), ends - offsets)
    node_id = np.arange(n) - np.repeat(offsets, ends - offsets)
    inner = trees["feature"] >= 0
    thr = np.where(inner, trees["threshold"], 0.0).astype(np.float32)
    leaf = ~inner
    return {
        "nodes_treeids": tree_id.tolist(),
        "nodes_nodeids": node_id.tolist(),
        "nodes_featureids": np.where(inner, trees["feature"], 0).astype(np.int64).tolist(),
        "nodes_modes": ["BRANCH_LEQ" if i else "LEAF" for i in inner],
        "nodes_values": [float(v) for v in thr],
        "nodes_truenodeids": np.where(inner, trees["left"], 0).astype(np.int64).tolist(),
        "nodes_falsenodeids": np.where(inner, trees["right"], 0).astype(np.int64).tolist(),
        "nodes_missing_value_tracks_true": np.where(inner, trees["missing_left"], 0).astype(np.int64).tolist(),
        "nodes_hitrates": [1.0] * n,
        "_leaf_tree": tree_id[leaf].tolist(),
        "_leaf_node": node_id[leaf].tolist(),
        "_leaf_value": [float(v) for v in np.asarray(trees["value"], np.float64)[leaf]],
    }


def to_onnx(model: Any, n_features: int | None = None, name: str = "trident_gbdt") -> Any:
    """The ``onnx.ModelProto`` of a fitted :class:`~engine.train.gbdt.TridentGBDTClassifier` or
    :class:`~engine.train.gbdt.TridentGBDTRegressor`.

    Parameters
    ----------
    model : fitted Trident GBDT estimator
    n_features : int, optional
        Width of the input (defaults to ``model.n_features_in_``; must match it).
    name : str
        Graph name.

    Raises
    ------
    ValueError
        When ``n_features`` differs from the model's.
    """
    import onnx
    from onnx import TensorProto, helper
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "trees_")
    nf = int(model.n_features_in_)
    if n_features is not None and int(n_features) != nf:
        raise ValueError(f"n_features: the model was fitted on {nf} features, got {n_features}")
    attrs = _tree_attributes(model.trees_)
    leaf_tree, leaf_node, leaf_value = attrs.pop("_leaf_tree"), attrs.pop("_leaf_node"), attrs.pop("_leaf_value")
    x = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, nf])
    base = [float(np.float32(model.base_score_))]
    if getattr(model, "_kind", "") == "classifier":
        classes = np.asarray(model.classes_)
        if classes.dtype.kind in "iub":
            labels = {"classlabels_int64s": [int(c) for c in classes]}
            label_type = TensorProto.INT64
        else:
            labels = {"classlabels_strings": [str(c) for c in classes]}
            label_type = TensorProto.STRING
        node = helper.make_node(
            "TreeEnsembleClassifier", [INPUT_NAME], ["label", "probabilities"], domain="ai.onnx.ml", name="trees",
            post_transform="LOGISTIC", base_values=base, class_treeids=leaf_tree, class_nodeids=leaf_node,
            class_ids=[0] * len(leaf_tree), class_weights=leaf_value, **labels, **attrs,
        )
        outputs = [
            helper.make_tensor_value_info("label", label_type, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ]
    else:
        node = helper.make_node(
            "TreeEnsembleRegressor", [INPUT_NAME], ["variable"], domain="ai.onnx.ml", name="trees",
            post_transform="NONE", base_values=base, n_targets=1, target_treeids=leaf_tree, target_nodeids=leaf_node,
            target_ids=[0] * len(leaf_tree), target_weights=leaf_value, aggregate_function="SUM", **attrs,
        )
        outputs = [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])]
    graph = helper.make_graph([node], name, [x], outputs)
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="trident", producer_version="1",
    )
    onnx_model.ir_version = min(onnx_model.ir_version, 9)
    onnx.checker.check_model(onnx_model)
    return onnx_model


def _session(onnx_model: Any) -> Any:
    import onnxruntime as ort

    data = onnx_model if isinstance(onnx_model, (bytes, bytearray)) else onnx_model.SerializeToString()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(bytes(data), sess_options=opts, providers=["CPUExecutionProvider"])


def verify_onnx(model: Any, onnx_model: Any, X: Any, tol: float = 1e-5) -> float:
    """Largest ``|ONNX - model|`` over the rows of ``X`` (probabilities for a classifier, predictions for
    a regressor, also checking the classifier's labels); raises when it exceeds ``tol``.

    Raises
    ------
    GateFailed
        Naming the largest difference, its row, both values and the tolerance; or the first row
        whose ONNX label differs from :meth:`predict` away from the 0.5 boundary.
    """
    from engine.backend import to_numpy
    from engine.errors import GateFailed

    Xh = np.ascontiguousarray(to_numpy(X), dtype=np.float32)
    sess = _session(onnx_model)
    classifier = getattr(model, "_kind", "") == "classifier"
    if classifier:
        label, proba = sess.run(["label", "probabilities"], {INPUT_NAME: Xh})
        want = np.asarray(to_numpy(model.predict_proba(Xh)), np.float64)
        got = np.asarray(proba, np.float64)
    else:
        got = np.asarray(sess.run(["variable"], {INPUT_NAME: Xh})[0], np.float64).reshape(-1)
        want = np.asarray(to_numpy(model.predict(Xh)), np.float64)
    if got.shape != want.shape:
        raise GateFailed(f"ONNX output has shape {got.shape}, the model's has {want.shape}")
    diff = np.abs(got - want)
    diff = np.where(np.isnan(diff), np.inf, diff)
    worst = float(diff.max()) if diff.size else 0.0
    if worst > tol:
        r = int(np.unravel_index(np.argmax(diff), diff.shape)[0])
        raise GateFailed(
            f"ONNX and model disagree: largest difference {worst:.3g} at row {r} "
            f"(model {want[r].tolist()}, ONNX {got[r].tolist()}) exceeds tol={tol:g}"
        )
    if classifier:
        want_label = np.asarray(to_numpy(model.predict(Xh)))
        clear = np.abs(want[:, 1] - 0.5) > 2 * tol
        bad = np.flatnonzero(clear & (np.asarray(label).astype(want_label.dtype) != want_label))
        if bad.size:
            r = int(bad[0])
            raise GateFailed(f"ONNX label differs at row {r}: ONNX {label[r].item()!r}, model {want_label[r].item()!r}")
    return worst
