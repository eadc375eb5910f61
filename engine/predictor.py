"""Embedded prediction: load a packaged model and score raw columns in-process.

>>> import engine                                                    # doctest: +SKIP
>>> model = engine.load("runs/20261128-101500-a1b2c3")               # doctest: +SKIP
>>> model.predict(frame)          # DataFrame with columns score and label, frame's index   # doctest: +SKIP

``engine.load`` accepts a run folder (``runs/<id>``), a model folder (``runs/<id>/model``), a run id
under ``./runs``, or a registered model (``models:/<name>@<alias>``, ``models:/<name>/<version>``),
downloaded once into a local cache. The features and the estimator run through
:class:`engine.export.pipeline_runtime.PipelineRuntime`, the same code the Triton model runs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import DataError, TridentError


def cache_root() -> Path:
    """Where registered models are downloaded: $TRIDENT_CACHE or ~/.cache/trident, then models/."""
    base = os.environ.get("TRIDENT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "trident")
    return Path(base) / "models"


class Predictor:
    """A loaded model: ``predict(frame)`` -> DataFrame(score, label); ``predict_proba(frame)`` -> [N, 2].

    Parameters
    ----------
    runtime : PipelineRuntime
        The packaged model.
    source : str
        What was loaded (the URI or folder), for messages.
    folder : Path
        The local model folder.
    version : str, optional
        Registered version, when loaded from the registry.
    """

    def __init__(self, runtime: Any, source: str, folder: Path, version: str | None = None) -> None:
        self.runtime = runtime
        self.source = source
        self.folder = Path(folder)
        self.version = version

    @property
    def task(self) -> str:
        return self.runtime.task

    @property
    def threshold(self) -> float | None:
        return self.runtime.threshold

    @property
    def input_columns(self) -> list[str]:
        """The raw columns ``predict`` needs (others in the frame are ignored)."""
        return list(self.runtime.input_columns)

    @property
    def meta(self) -> dict[str, Any]:
        """The model.json record."""
        return dict(self.runtime.meta)

    def __repr__(self) -> str:
        m = self.runtime.meta
        return (f"Predictor({self.source!r}: {m.get('task')} {m.get('candidate')}, "
                f"{len(self.input_columns)} input columns)")

    def _columns(self, frame: Any) -> tuple[dict[str, Any], Any]:
        """The feature runtime's input columns for ``frame`` (strings dictionary-encoded once) and its index."""
        import pandas as pd

        if isinstance(frame, dict):
            frame = pd.DataFrame(frame)
        if hasattr(frame, "to_pandas") and not isinstance(frame, pd.DataFrame):
            frame = frame.to_pandas()
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"predict: expected a pandas DataFrame of raw columns, got {type(frame).__name__}")
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            kinds = self.runtime.input_kinds
            raise DataError(f"predict: missing input column{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(repr(c) for c in missing)}; the model reads: "
                            + ", ".join(f"{c} ({kinds[c]})" for c in self.input_columns))
        from engine.features.frame import to_columns

        feats = self.runtime.features
        raw = {e["column"] for e in getattr(feats, "categorical", []) if e.get("encoder") == "hashing"}
        kinds = {c: self.runtime.input_kinds[c] for c in self.input_columns}
        return to_columns(frame, kinds, raw_strings=raw), frame.index

    def scores(self, frame: Any) -> np.ndarray:
        """P(positive) (binary) or the prediction (regression), float64."""
        from engine.export.pipeline_runtime import InputError

        cols, _ = self._columns(frame)
        try:
            return self.runtime.scores(cols)
        except InputError as exc:
            raise DataError(f"predict: {exc}") from None

    def predict_proba(self, frame: Any) -> np.ndarray:
        """``[P(negative), P(positive)]`` per row (binary models only)."""
        if self.task != "binary":
            raise TridentError(f"predict_proba: {self.source} is a {self.task} model; use predict")
        s = self.scores(frame)
        return np.column_stack([1.0 - s, s])

    def predict(self, frame: Any) -> Any:
        """A DataFrame with the frame's index and columns ``score`` (P(positive), or the regression
        prediction) and ``label`` (the original target label at the model's threshold; regression: the
        prediction)."""
        import pandas as pd

        from engine.export.pipeline_runtime import InputError

        cols, index = self._columns(frame)
        try:
            s = self.runtime.scores(cols)
        except InputError as exc:
            raise DataError(f"predict: {exc}") from None
        label = self.runtime.decide(s)
        if label.dtype == object:
            label = pd.array(list(label.tolist())) if len(label) else pd.array([], dtype=object)
        return pd.DataFrame({"score": s, "label": label}, index=index)


def _local_folder(uri: str) -> Path:
    """The model folder for a local ``uri`` (run folder, model folder or run id under ./runs)."""
    from engine.registry.manifest import MANIFEST

    p = Path(uri).expanduser()
    candidates = [p, Path("runs") / uri] if not p.is_absolute() else [p]
    for cand in candidates:
        if (cand / "model.json").is_file():
            return cand
        if (cand / "model" / "model.json").is_file():
            return cand / "model"
        if (cand / MANIFEST).is_file():
            import json

            m = json.loads((cand / MANIFEST).read_text(encoding="utf-8"))
            why = f"status {m.get('status')!r}" + (f": {m['reason']}" if m.get("reason") else "")
            raise TridentError(f"run {m.get('run_id', cand.name)} has no packaged model ({why})")
    raise TridentError(f"no model at {uri!r}: expected a run folder (runs/<id>) holding model/model.json, a "
                       f"model folder, or models:/NAME@ALIAS")


def load(uri: str | os.PathLike, tracking_uri: str | None = None, cache_dir: str | os.PathLike | None = None,
         verify: bool = True) -> Predictor:
    """Load a packaged model for in-process prediction.

    Parameters
    ----------
    uri : str
        ``runs/<id>``, ``runs/<id>/model``, a run id under ./runs, ``models:/<name>@<alias>`` or
        ``models:/<name>/<version>``.
    tracking_uri : str, optional
        MLflow store for ``models:/`` URIs (default: $MLFLOW_TRACKING_URI, else ./mlflow.db).
    cache_dir : path, optional
        Where registered models are downloaded (default: :func:`cache_root`).
    verify : bool
        Check every file against the SHA-256 recorded in model.json.

    Raises
    ------
    TridentError
        Unknown run, registered model, alias or version; a folder that is not a complete model.
    """
    from engine.export.pipeline_runtime import ModelFormatError, PipelineRuntime

    text = str(uri)
    version = None
    if text.startswith("models:/"):
        from engine.registry.mlflow_registry import ModelRef, download

        ref = ModelRef.parse(text)
        folder, mv = download(ref, cache_dir or cache_root(), tracking_uri)
        version = str(mv.version)
    else:
        folder = _local_folder(text)
    try:
        runtime = PipelineRuntime.load(str(folder), verify=verify)
    except ModelFormatError as exc:
        raise TridentError(f"cannot load {text}: {exc}") from None
    return Predictor(runtime, text, folder, version)
