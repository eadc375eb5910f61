"""Pipeline stage ``register``: package the chosen model and register it in MLflow as ``challenger``.

1. Refuses to run unless the ``kpi`` gate passed (gates are data).
2. Converts the chosen estimator to ONNX and verifies it on the validation rows (gate ``onnx_parity``).
3. Writes ``<run>/model/`` (model.onnx, features/, model.json last) and checks the whole packaged
   pipeline, raw columns in, against the in-process estimator on validation rows (gate
   ``pipeline_parity``, when the run state holds the raw frame).
4. Logs the folder and the model card to the active MLflow run, registers a new version of
   ``model.registered_name`` tagged with the Trident run id and the folder's hashes, and sets the
   ``challenger`` alias. With tracking off, registration is skipped and the manifest says so.

Sets ``ctx.state`` ``model_dir`` and ``registered_model``; ``ctx.manifest["registered_model"]``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from engine import console
from engine.errors import GateFailed, TridentError

LOG = console.LOG

MODEL_DIR = "model"
PIPELINE_PARITY_ROWS = 2000


def target_labels(ctx: Any) -> dict[str, Any] | None:
    """``{"0": negative label, "1": positive label}`` with the target's original values, when known."""
    labels = ctx.state.get("labels")
    if isinstance(labels, dict) and "0" in labels and "1" in labels:
        return {"0": _plain(labels["0"]), "1": _plain(labels["1"])}
    pos = ctx.state.get("positive_label")
    frame, target = ctx.state.get("frame"), ctx.state.get("target")
    if pos is None or frame is None or target is None or target not in getattr(frame, "columns", []):
        return None
    col = frame[target]
    if hasattr(col, "to_pandas"):
        col = col.to_pandas()
    values = [_plain(v) for v in col.dropna().unique().tolist()]
    pos_v = next((v for v in values if str(v) == str(pos)), None)
    others = sorted({str(v): v for v in values if str(v) != str(pos)}.items())
    if pos_v is None or len(others) != 1:
        return None
    return {"0": others[0][1], "1": pos_v}


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    return v if isinstance(v, (str, int, float, bool)) or v is None else str(v)


def _kpi(ctx: Any, key: str, default: Any) -> Any:
    kpi = getattr(ctx.cfg, "kpi", None)
    v = getattr(kpi, key, default) if kpi is not None else default
    return default if v is None else v


def pipeline_parity(ctx: Any, folder: Any, tolerance: float, rows: int = PIPELINE_PARITY_ROWS) -> dict[str, Any] | None:
    """Packaged pipeline on raw validation rows vs the estimator on the in-process feature matrix."""
    from engine.evaluate.stage import _frame_rows
    from engine.export.onnx import estimator_scores
    from engine.export.pipeline_runtime import PipelineRuntime

    raw = _frame_rows(ctx, "valid")
    if raw is None:
        return None
    n = min(rows, len(raw))
    rt = PipelineRuntime.load(str(folder))
    from engine.predictor import Predictor

    got = Predictor(rt, str(folder), folder).scores(raw.iloc[:n])
    task = rt.task
    want = estimator_scores(ctx.state["chosen"].estimator, ctx.state["X"]["valid"][:n], task)
    diff = np.abs(got - want)
    if task != "binary":
        diff = diff / np.maximum(1.0, np.abs(want))
    diff = np.where(np.isnan(diff), np.inf, diff)
    row = int(np.argmax(diff)) if n else 0
    worst = float(diff[row]) if n else 0.0
    rec = {"rows": int(n), "tolerance": float(tolerance), "max_abs_diff": worst, "row": row}
    if not worst <= tolerance:
        raise GateFailed(f"pipeline parity failed: the packaged model (raw columns -> features -> ONNX) differs from "
                         f"the in-process model by {worst:.3g} at validation row {row} (tolerance {tolerance:g}); the "
                         f"saved feature pipeline does not reproduce the training features")
    return rec


def package(ctx: Any) -> dict[str, Any]:
    """ONNX export with its parity gate, then the model folder; returns the model.json record."""
    from engine.export.onnx import export
    from engine.registry.package import registered_name, write_model_folder

    cand = ctx.state["chosen"]
    task = ctx.state["evaluation"]["task"]
    tol = float(_kpi(ctx, "onnx_max_abs_diff", 1e-4))
    n_rows = int(_kpi(ctx, "onnx_parity_rows", 20000))
    X_valid = ctx.state["X"]["valid"]
    X_hold = X_valid[:n_rows] if n_rows > 0 else X_valid
    try:
        onnx_model, parity = export(cand.estimator, X_hold, task, tolerance=tol, name=f"trident_{cand.name}")
    except GateFailed as exc:
        ctx.record_gate("onnx_parity", False, {"candidate": cand.name, "tolerance": tol, "error": str(exc)})
        raise
    ctx.record_gate("onnx_parity", True, {"candidate": cand.name, **parity})
    LOG.info("register: ONNX parity on %d validation rows: max |diff| %.2g (tolerance %g)", parity["rows"],
             parity["max_abs_diff"], tol)
    name = registered_name(ctx.cfg)
    folder = ctx.path(MODEL_DIR)
    saved = ctx.path("features")
    meta = write_model_folder(folder, onnx_model=onnx_model, features=ctx.state.get("features"),
                              features_dir=saved if (saved / "features.json").is_file() else None, task=task,
                              name=name, candidate=cand.name, library=cand.library,
                              threshold=ctx.state.get("threshold"), labels=target_labels(ctx), run_id=ctx.run_id,
                              extra={"onnx_parity": {k: parity[k] for k in ("rows", "tolerance", "max_abs_diff")}})
    ctx.record_dir(MODEL_DIR)
    try:
        pp = pipeline_parity(ctx, folder, tol)
    except GateFailed as exc:
        ctx.record_gate("pipeline_parity", False, {"error": str(exc)})
        raise
    if pp is not None:
        ctx.record_gate("pipeline_parity", True, pp)
    ctx.state["model_dir"] = folder
    ctx.manifest.save()
    return meta


def register(ctx: Any) -> None:
    """Stage ``register``: package, then register the version in MLflow with the ``challenger`` alias."""
    from engine.atomic import sha256_file
    from engine.registry.package import MODEL_JSON, registered_name

    gate = (ctx.manifest["gates"] or {}).get("kpi")
    if "chosen" not in ctx.state or not gate or not gate.get("passed"):
        raise TridentError("register: no chosen model with a passing KPI gate; the evaluate and select stages must "
                           "run (and pass) first")
    meta = package(ctx)
    folder = ctx.state["model_dir"]
    name = registered_name(ctx.cfg)
    tracker = getattr(ctx, "tracker", None)
    if tracker is None or not getattr(tracker, "enabled", False) or not getattr(tracker, "run_id", None):
        note = "tracking is off (tracking.enabled=false): the model is packaged in the run folder, not registered"
        LOG.info("register: %s", note)
        ctx.manifest["registered_model"] = {"registered": False, "name": name, "reason": note}
        ctx.manifest.save()
        return
    from engine.registry.mlflow_registry import CHALLENGER, register_folder

    tags = {"trident.run_id": ctx.run_id, "trident.candidate": meta["candidate"],
            "trident.model_json.sha256": sha256_file(folder / MODEL_JSON)}
    tags.update({f"trident.sha256.{rel}": digest for rel, digest in sorted(meta["files"].items())})
    cards = [p for p in (ctx.state.get("model_card_html"), ctx.state.get("model_card_json")) if p]
    rec = register_folder(folder, name=name, mlflow_run_id=tracker.run_id, tracking_uri=tracker.uri, tags=tags,
                          card_files=cards, alias=CHALLENGER,
                          description=f"Trident run {ctx.run_id}: {meta['candidate']} ({meta['task']})")
    rec["registered"] = True
    rec["model_json_sha256"] = tags["trident.model_json.sha256"]
    ctx.manifest["registered_model"] = rec
    ctx.state["registered_model"] = rec
    ctx.manifest.save()
    LOG.info("register: %s version %s (alias %s)", name, rec["version"], CHALLENGER)
