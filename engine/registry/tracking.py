"""MLflow bridge: one MLflow run per Trident run (params, metrics, manifest and reports, dataset digests).

The default store is ``sqlite:///<cwd>/mlflow.db`` (artifacts in ./mlruns); ``tracking.uri`` points
anywhere MLflow can reach.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine import console

LOG = console.LOG


def tracking_uri(cfg_uri: str | None) -> str:
    if cfg_uri:
        return str(cfg_uri)
    return f"sqlite:///{Path(os.getcwd()).resolve() / 'mlflow.db'}"


def _flatten(d: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = str(d)[:500]
    return out


class Tracker:
    """Start with :meth:`start`; stages may use ``tracker.run_id``; :meth:`finish` logs and ends the run."""

    def __init__(self, enabled: bool, uri: str | None = None, run_id: str | None = None,
                 experiment_id: str | None = None) -> None:
        self.enabled = enabled
        self.uri = uri
        self.run_id = run_id
        self.experiment_id = experiment_id

    @classmethod
    def start(cls, cfg: Any, ctx: Any) -> "Tracker":
        if not cfg.tracking.enabled:
            ctx.manifest["mlflow"] = None
            return cls(False)
        import logging
        import warnings

        logging.getLogger("alembic").setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mlflow
        uri = tracking_uri(cfg.tracking.uri)
        mlflow.set_tracking_uri(uri)
        exp = mlflow.set_experiment(str(cfg.tracking.experiment))
        run = mlflow.start_run(run_name=ctx.run_id, tags={"trident.run_id": ctx.run_id})
        ctx.manifest["mlflow"] = {"tracking_uri": uri, "experiment_id": exp.experiment_id,
                                  "run_id": run.info.run_id}
        ctx.manifest.save()
        return cls(True, uri, run.info.run_id, exp.experiment_id)

    def finish(self, ctx: Any) -> None:
        if not self.enabled:
            return
        import mlflow

        try:
            params = _flatten(ctx.manifest["config"])
            items = sorted(params.items())
            for i in range(0, len(items), 100):
                mlflow.log_params(dict(items[i:i + 100]))
            if ctx.metrics:
                mlflow.log_metrics({k.replace("@", "_at_"): v for k, v in ctx.metrics.items()})
            tags = {"trident.status": ctx.manifest["status"], "trident.backend": ctx.backend.name}
            git = ctx.manifest.data.get("git") or {}
            if git.get("commit"):
                tags["trident.git_commit"] = git["commit"]
                tags["trident.git_dirty"] = str(git.get("dirty"))
            for name, rec in ctx.manifest["datasets"].items():
                tags[f"trident.dataset.{name}.sha256"] = rec["sha256"]
            mlflow.set_tags(tags)
            ctx.manifest.save()
            mlflow.log_artifacts(str(ctx.run_dir), artifact_path="trident")
        except Exception as exc:  # tracking must never lose the run's own records
            LOG.warning("MLflow logging failed: %s", exc)
            ctx.manifest["mlflow_error"] = str(exc)
        finally:
            status = {"succeeded": "FINISHED", "rejected": "FINISHED"}.get(ctx.manifest["status"], "FAILED")
            if ctx.manifest["status"] == "interrupted":
                status = "KILLED"
            mlflow.end_run(status=status)
