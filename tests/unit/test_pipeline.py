"""The stage runner: manifest records, seeds, early stop, failures, atomic artifacts."""
import json

import numpy as np
import pandas as pd
import pytest

from engine.config import compose
from engine.errors import DataError
from engine.pipeline import StopRun, dataset_sha256, derive_seed, run_pipeline


def _cfg(tmp_path, *extra):
    return compose([f"runs_dir={tmp_path / 'runs'}", "tracking=off", "backend=cpu", *extra])


def _write(ctx):
    ctx.write_json("a.json", {"x": 1})
    ctx.add_dataset("d", pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    ctx.log_metrics({"m": 0.5})
    ctx.state["seed"] = ctx.seed("thing")


def test_manifest_records_everything(tmp_path):
    ctx = run_pipeline(_cfg(tmp_path), overrides=["x=1"], stages=[("write", _write)])
    m = json.loads((ctx.run_dir / "manifest.json").read_text())
    assert m["status"] == "succeeded"
    assert m["overrides"] == ["x=1"]
    assert [s["name"] for s in m["stages"]] == ["write"] and m["stages"][0]["seconds"] >= 0
    assert m["files"][0]["path"] == "a.json" and len(m["files"][0]["sha256"]) == 64
    assert m["datasets"]["d"]["rows"] == 2
    assert m["metrics"] == {"m": 0.5}
    assert m["seeds"]["thing"] == derive_seed(0, "thing")
    assert m["backend"]["name"] == "cpu" and m["hardware"]["cpu_cores_logical"] >= 1
    assert "numpy" in m["packages"] and "commit" in m["git"] and len(m["code_sha256"]) == 64
    assert m["config"]["backend"]["name"] == "cpu"


def test_stop_run_ends_with_status_and_reason(tmp_path):
    def reject(ctx):
        raise StopRun("rejected", "no candidate met roc_auc >= 0.9")

    def never(ctx):
        raise AssertionError("must not run")

    ctx = run_pipeline(_cfg(tmp_path), stages=[("a", reject), ("b", never)])
    assert ctx.manifest["status"] == "rejected"
    assert "roc_auc" in ctx.manifest["reason"]


def test_failure_is_recorded_and_reraised(tmp_path):
    def bad(ctx):
        ctx.write_json("ok.json", {})
        raise DataError("column 'x': expected numbers")

    with pytest.raises(DataError):
        run_pipeline(_cfg(tmp_path), stages=[("bad", bad)])
    run_dir = next((tmp_path / "runs").iterdir())
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "failed" and "column 'x'" in m["error"]
    assert not [p for p in run_dir.rglob(".tmp-*")]


def test_until_stops_after_named_stage(tmp_path):
    seen = []
    stages = [(n, lambda ctx, n=n: seen.append(n)) for n in ("a", "b", "c")]
    run_pipeline(_cfg(tmp_path, "until=b"), stages=stages)
    assert seen == ["a", "b"]


def test_dataset_hash_sees_values_and_dtypes():
    a = pd.DataFrame({"x": np.arange(5.0), "y": list("abcde")})
    b = a.copy()
    assert dataset_sha256(a) == dataset_sha256(b)
    b.loc[2, "x"] = 99.0
    assert dataset_sha256(a) != dataset_sha256(b)
    assert dataset_sha256(a) != dataset_sha256(a.astype({"x": "float32"}))


def test_seeds_are_stable_and_distinct():
    assert derive_seed(0, "split") == derive_seed(0, "split")
    assert derive_seed(0, "split") != derive_seed(1, "split")
    assert derive_seed(0, "split") != derive_seed(0, "search")


def test_mlflow_run_logged(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose([f"runs_dir={tmp_path / 'runs'}", f"tracking.uri={uri}", "backend=cpu"])
    ctx = run_pipeline(cfg, stages=[("write", _write)])
    run = mlflow.tracking.MlflowClient(uri).get_run(ctx.manifest["mlflow"]["run_id"])
    assert run.data.metrics["m"] == 0.5
    assert run.data.params["backend.name"] == "cpu"
    assert run.data.tags["trident.dataset.d.sha256"] == ctx.manifest["datasets"]["d"]["sha256"]
    assert run.info.status == "FINISHED"
