"""Write the packaged model folder (docs/model-format.md): model.onnx, features/, then model.json.

Every file is written atomically; model.json goes last and lists the SHA-256 of every other file, so a
folder without model.json (or whose files do not match it) is never taken for a complete model.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from engine import atomic
from engine.errors import TridentError

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
MODEL_ONNX = "model.onnx"
FEATURES_DIR = "features"
DEFAULT_REGISTERED_NAME = "trident_model"


def registered_name(cfg: Any) -> str:
    """``model.registered_name`` from the config, ``trident_model`` when the key is absent or empty."""
    model = getattr(cfg, "model", None) if cfg is not None else None
    name = None
    if model is not None:
        try:
            name = model.get("registered_name") if hasattr(model, "get") else getattr(model, "registered_name", None)
        except Exception:
            name = getattr(model, "registered_name", None)
    return str(name) if name else DEFAULT_REGISTERED_NAME


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(atomic.TMP_PREFIX)
                  and p.name != MODEL_JSON and "__pycache__" not in p.parts)


def copy_tree(src: Path, dst: Path) -> list[str]:
    """Copy every file of ``src`` under ``dst`` atomically; returns the relative paths copied."""
    out = []
    for p in sorted(q for q in Path(src).rglob("*") if q.is_file() and not q.name.startswith(atomic.TMP_PREFIX)):
        rel = p.relative_to(src)
        atomic.write_bytes(Path(dst) / rel, p.read_bytes())
        out.append(str(rel))
    return out


def save_features(features: Any, saved_dir: Path | None, dst: Path) -> None:
    """Put the fitted feature pipeline under ``dst``: a copy of ``saved_dir`` when it holds a saved
    pipeline, else ``features.save()`` into a scratch folder that is then copied."""
    if saved_dir is not None and (Path(saved_dir) / "features.json").is_file():
        copy_tree(Path(saved_dir), dst)
        return
    if features is None or not callable(getattr(features, "save", None)):
        raise TridentError("package: no saved feature pipeline (expected <run>/features/features.json or a fitted "
                           "pipeline with .save(dir) in the run state)")
    tmp = Path(tempfile.mkdtemp(prefix="trident-features-"))
    try:
        features.save(str(tmp))
        copy_tree(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def onnx_input_width(data: bytes) -> int | None:
    """Second dimension of the ONNX model's input (None when symbolic)."""
    import onnx

    m = onnx.load_from_string(data)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 2:
        raise TridentError(f"the ONNX model's input has rank {len(dims)}; expected a [rows, features] matrix")
    return int(dims[1].dim_value) if dims[1].HasField("dim_value") else None


def write_model_folder(folder: str | os.PathLike, *, onnx_model: Any, features: Any = None,
                       features_dir: str | os.PathLike | None = None, task: str, name: str, candidate: str,
                       library: str, threshold: float | None, labels: dict[str, Any] | None, run_id: str,
                       extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``folder`` (model.onnx, features/, model.json last); return the model.json record.

    Parameters
    ----------
    onnx_model : engine.export.onnx.OnnxModel
        Converted and verified estimator.
    features, features_dir
        The fitted feature pipeline: its saved folder (copied) or an object with ``save(dir)``.
    labels : dict, optional
        Binary tasks: ``{"0": negative label, "1": positive label}``.

    Raises
    ------
    TridentError
        The feature pipeline's width does not match the ONNX model's input.
    """
    from engine.features.runtime import FeatureRuntime

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_JSON).unlink(missing_ok=True)  # the folder is incomplete until model.json is back
    atomic.write_bytes(folder / MODEL_ONNX, onnx_model.data)
    feat = folder / FEATURES_DIR
    if feat.exists():
        shutil.rmtree(feat)
    save_features(features, Path(features_dir) if features_dir is not None else None, feat)
    runtime = FeatureRuntime.load(str(feat))
    width = onnx_input_width(onnx_model.data)
    if width is not None and width != runtime.n_features:
        raise TridentError(f"package: the feature pipeline outputs {runtime.n_features} features but the ONNX "
                           f"model expects {width}")
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "task": task,
        "name": name,
        "candidate": candidate,
        "library": library,
        "threshold": None if threshold is None else float(threshold),
        "input_columns": [{"name": c, "kind": k} for c, k in runtime.inputs],
        "feature_names": list(runtime.feature_names),
        "onnx": onnx_model.record(MODEL_ONNX),
        "labels": labels if task == "binary" else None,
        "run_id": run_id,
        **(extra or {}),
    }
    meta["files"] = {str(p.relative_to(folder)): atomic.sha256_file(p) for p in _files(folder)}
    atomic.write_json(folder / MODEL_JSON, meta)
    return meta
