"""The serving commands as a user runs them: serve --background/--status/--stop, deploy, predict, rollback,
and the documented plain tritonclient call. The tests run in file order on one background server."""
from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.serve import state

pytestmark = [pytest.mark.triton, pytest.mark.slow]
REPO_ARGS = ["--repository", "triton_models", "deploy.data=heldout.csv"]
FAST = ["deploy.load_test.duration_s=0.5", "deploy.load_test.open_loop_duration_s=0.5",
        "deploy.load_test.open_loop_rate=50", "deploy.load_test.p99_ms=[2000]",
        "deploy.load_test.open_loop_p99_ms=2000", "deploy.parity.rows=100"]


@pytest.fixture(scope="module")
def work(tmp_path_factory, packaged_models, credit_heldout, serving_env):
    base = tmp_path_factory.mktemp("cli")
    shutil.copytree(packaged_models["credit_v1"], base / "runs" / "r1" / "model")
    shutil.copytree(packaged_models["credit_v2"], base / "runs" / "r2" / "model")
    credit_heldout.to_csv(base / "heldout.csv", index=False)
    repo = base / "triton_models"
    yield base
    info = state.read_server_info(repo) or {}
    for pid in (info.get("supervisor_pid"), info.get("pid")):
        if pid and state.pid_alive(pid):
            try:
                os.killpg(int(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    for p in Path("/dev/shm").glob(f"{info.get('shm_prefix', 'none')}*"):
        p.unlink(missing_ok=True)


def test_serve_background_prints_the_ports(work):
    res = _trident(work, "serve", "--background", "--repository", "triton_models")
    assert res.returncode == 0, res.stderr
    assert re.search(r"gRPC\s+127\.0\.0\.1:\d+", res.stdout)
    assert re.search(r"metrics\s+http://127\.0\.0\.1:\d+", res.stdout)
    info = state.read_server_info(work / "triton_models")
    assert state.pid_alive(info["pid"]) and state.pid_alive(info["supervisor_pid"])


def test_deploy_of_a_run_folder_promotes_it(work):
    res = _trident(work, "deploy", "--run", "runs/r1", *REPO_ARGS, *FAST)
    assert res.returncode == 0, res.stderr
    assert "deployed credit version 1" in res.stdout
    assert "gate parity       passed" in res.stdout
    assert state.served_version(work / "triton_models", "credit") == 1


def test_a_refused_deployment_exits_3_with_one_line(work):
    res = _trident(work, "deploy", "--run", "runs/r2", "--repository", "triton_models", "deploy.data=heldout.csv",
                   *FAST, "deploy.load_test.p99_ms=[0.001]")
    assert res.returncode == 3
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("trident: error:")]
    assert len(errors) == 1 and "refused by gate load_test" in errors[0] and "version 1 keeps serving" in errors[0]
    assert "Traceback" not in res.stderr
    assert state.served_version(work / "triton_models", "credit") == 1


def test_predict_scores_a_file_through_the_server(work, packaged_models, credit_heldout):
    res = _trident(work, "predict", "--input", "heldout.csv", "--output", "scored.csv", "--repository", "triton_models")
    assert res.returncode == 0, res.stderr
    out = pd.read_csv(work / "scored.csv")
    assert list(out.columns[-2:]) == ["score", "label"] and len(out) == len(credit_heldout)
    import engine

    want = engine.load(str(packaged_models["credit_v1"])).predict(credit_heldout)
    assert np.max(np.abs(out["score"].to_numpy() - want["score"].to_numpy())) <= 1e-6
    assert (out["label"].astype(str).to_numpy() == want["label"].astype(str).to_numpy()).all()


def test_predict_in_small_chunks_and_to_parquet_gives_the_same_scores(work, credit_heldout):
    """The input is read, scored and written a chunk at a time: small chunks (a last partial one), a
    Parquet output, and the one-chunk CSV agree row for row."""
    outs = {}
    for name, extra in {"one.csv": [], "chunks.csv": ["--chunk-rows", "97"], "chunks.parquet": ["--chunk-rows", "150"]}.items():
        res = _trident(work, "predict", "--input", "heldout.csv", "--output", name, "--repository", "triton_models", *extra)
        assert res.returncode == 0, res.stderr
        assert f"scored {len(credit_heldout)} rows" in res.stdout
        outs[name] = pd.read_parquet(work / name) if name.endswith(".parquet") else pd.read_csv(work / name)
    one = outs["one.csv"]
    assert len(credit_heldout) % 97 and list(one.columns) == list(credit_heldout.columns) + ["score", "label"]
    for name in ("chunks.csv", "chunks.parquet"):
        other = outs[name]
        assert list(other.columns) == list(one.columns) and len(other) == len(one)
        diff = np.max(np.abs(other["score"].to_numpy(float) - one["score"].to_numpy(float)))
        assert diff <= 1e-6, (name, diff)  # float32 scores: CSV text against Parquet's binary value
        assert (other["label"].astype(str).to_numpy() == one["label"].astype(str).to_numpy()).all()
    res = _trident(work, "predict", "--input", "heldout.csv", "--output", "x.csv", "--repository", "triton_models",
                   "--chunk-rows", "0")
    assert res.returncode == 2 and "--chunk-rows" in res.stderr and "Traceback" not in res.stderr
    assert not (work / "x.csv").exists()


def test_the_documented_tritonclient_call_works(work):
    text = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text()
    code = re.search(r"```python\n(import numpy.*?)```", text, flags=re.S).group(1)
    info = state.read_server_info(work / "triton_models")
    code = code.replace('"127.0.0.1:8001"', repr(info["grpc_url"])).replace("print(", "captured = (")
    scope: dict = {}
    exec(compile(code, "docs/serving.md", "exec"), scope)  # noqa: S102 - our own documentation
    score, label = scope["captured"]
    assert 0.0 <= float(score[0]) <= 1.0 and label[0] in (b"good", b"bad")


def test_rollback_switches_back_and_records_why(work):
    res = _trident(work, "deploy", "--run", "runs/r2", *REPO_ARGS, *FAST)
    assert res.returncode == 0, res.stderr
    assert state.served_version(work / "triton_models", "credit") == 2
    res = _trident(work, "rollback", "--repository", "triton_models", "--reason", "complaints about v2")
    assert res.returncode == 0, res.stderr
    assert "rolled back credit from version 2 to 1" in res.stdout
    last = state.read_served(work / "triton_models")["models"]["credit"]["history"][-1]
    assert last["event"] == "rollback" and last["reason"] == "complaints about v2"


def test_deploy_of_a_registered_model_moves_the_champion_alias(work, packaged_models):
    from engine.registry.mlflow_registry import client, register_folder

    uri = f"sqlite:///{work / 'mlflow.db'}"
    c = client(uri)
    exp = c.create_experiment("cli-test")
    run = c.create_run(exp)
    rec = register_folder(packaged_models["credit_v1"], name="credit", mlflow_run_id=run.info.run_id, tracking_uri=uri)
    assert rec["version"] == "1"
    res = _trident(work, "deploy", "credit", *REPO_ARGS, *FAST,
                   env={"MLFLOW_TRACKING_URI": uri, "TRIDENT_CACHE": str(work / "cache")})
    assert res.returncode == 0, res.stderr
    assert str(c.get_model_version_by_alias("credit", "champion").version) == "1"
    tags = c.get_model_version("credit", "1").tags
    assert tags["trident.deploy.status"] == "promoted" and tags["trident.deploy.gate.parity"] == "passed"


def test_serve_stop_leaves_nothing_running(work):
    info = state.read_server_info(work / "triton_models")
    res = _trident(work, "serve", "--stop", "--repository", "triton_models")
    assert res.returncode == 0, res.stderr
    assert not state.pid_alive(info["pid"]) and not state.pid_alive(info["supervisor_pid"])
    assert not list(Path("/dev/shm").glob(f"{info['shm_prefix']}*"))
    assert state.read_server_info(work / "triton_models") is None


def _trident(work, *args, env=None, timeout=600):
    import subprocess
    import sys

    e = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    e["PYTHONPATH"] = root + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.pop("HYDRA_FULL_ERROR", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=work, capture_output=True, text=True,
                          timeout=timeout, env=e)

