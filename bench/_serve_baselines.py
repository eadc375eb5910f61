"""The baselines of ``python -m bench serve``: a minimal FastAPI endpoint calling scikit-learn, and an MLflow
pyfunc served by ``mlflow models serve``. Both compute the same model as the Triton pipeline: the fitted
Trident feature runtime, then the same logistic regression (scikit-learn in FastAPI, the packaged
pipeline in the pyfunc).

FastAPI app: ``BENCH_MODEL_DIR=<dir> uvicorn bench._serve_baselines:app`` where ``<dir>`` holds
``features/`` and ``logistic.json`` (coefficients; no pickle).
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np


def save_logistic(estimator: Any, path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"coef": estimator.coef_.tolist(), "intercept": estimator.intercept_.tolist(),
                   "classes": estimator.classes_.tolist()}, fh)


def load_logistic(path: str) -> Any:
    from sklearn.linear_model import LogisticRegression

    with open(path, encoding="utf-8") as fh:
        d = json.load(fh)
    lr = LogisticRegression()
    lr.coef_ = np.asarray(d["coef"], dtype=np.float64)
    lr.intercept_ = np.asarray(d["intercept"], dtype=np.float64)
    lr.classes_ = np.asarray(d["classes"])
    return lr


def _fastapi_app() -> Any:
    from fastapi import FastAPI, Request

    from engine.features.runtime import FeatureRuntime

    folder = os.environ.get("BENCH_MODEL_DIR", "")
    app = FastAPI()
    if not folder:
        return app
    features = FeatureRuntime.load(os.path.join(folder, "features"))
    lr = load_logistic(os.path.join(folder, "logistic.json"))
    kinds = features.input_kinds

    @app.post("/predict")
    def predict(row: dict[str, Any]) -> dict[str, Any]:  # one raw row, as JSON
        cols = {c: (np.array([np.nan if row.get(c) is None else row[c]], dtype=np.float64) if k == "numeric"
                    else np.array([row.get(c)], dtype=object)) for c, k in kinds.items()}
        p = float(lr.predict_proba(features.transform(cols))[0, 1])
        return {"score": p, "label": int(p >= 0.5)}

    del Request
    return app


app = _fastapi_app()


try:  # the MLflow pyfunc (importable only where mlflow is)
    import mlflow.pyfunc

    class PipelinePyfunc(mlflow.pyfunc.PythonModel):
        """The packaged pipeline (PipelineRuntime) as an MLflow pyfunc: raw columns in, score/label out."""

        def load_context(self, context: Any) -> None:
            from engine.export.pipeline_runtime import PipelineRuntime

            self.runtime = PipelineRuntime.load(context.artifacts["model"])

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            import pandas as pd

            from engine.serve.columns import to_columns

            out = self.runtime.predict(to_columns(model_input, self.runtime.meta["input_columns"]))
            return pd.DataFrame({"score": out["score"], "label": out["label"]})
except ImportError:  # pragma: no cover
    PipelinePyfunc = None  # type: ignore[assignment,misc]
