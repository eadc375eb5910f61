"""Fixtures of the serving tests: packaged models, the serving environment and a real Triton server.

The server is ``trident serve`` itself, started in its own process group on free ports (port 0) and a
temporary model repository; teardown stops it (SIGTERM, then SIGKILL of both process groups) and
removes its shared-memory regions, so nothing is left running.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
CREDIT_CSV = (REPO.parent / "shared" / "data" / "credit_data.csv").resolve()
#: Fast gates for tests: short load runs, SLOs this shared 2-core machine always meets.
FAST_GATES = ["deploy.load_test.duration_s=0.5", "deploy.load_test.open_loop_duration_s=0.5",
              "deploy.load_test.open_loop_rate=50", "deploy.load_test.warmup_requests=5",
              "deploy.load_test.p99_ms=[2000]", "deploy.load_test.open_loop_p99_ms=2000",
              "deploy.parity.rows=200"]


# ---- packaged models -----------------------------------------------------------------------------
def package_model(frame: pd.DataFrame, target: str, positive: Any, out: Path, name: str, C: float = 1.0,
                  exclude: tuple[str, ...] = ()) -> Path:
    """A packaged model folder (docs/model-format.md): FeaturePipeline + LogisticRegression as ONNX."""
    from sklearn.linear_model import LogisticRegression

    from engine.export.onnx import export
    from engine.features import FeaturePipeline
    from engine.registry.package import write_model_folder

    y = (frame[target].astype(str) == str(positive)).astype(int).to_numpy()
    X = frame.drop(columns=[target, *exclude])
    pipe = FeaturePipeline()
    M = pipe.fit_transform(X, y)
    lr = LogisticRegression(C=C, max_iter=2000).fit(M, y)
    onnx_model, _ = export(lr, M[:500], "binary", tolerance=1e-4, name="trident_logistic")
    values = sorted({str(v) for v in frame[target].dropna().unique()})
    negative = next(v for v in values if v != str(positive))
    write_model_folder(out, onnx_model=onnx_model, features=pipe, task="binary", name=name, candidate="logistic",
                       library="sklearn", threshold=0.5, labels={"0": negative, "1": str(positive)}, run_id=out.name)
    return out


@pytest.fixture(scope="session")
def credit_frame() -> pd.DataFrame:
    if not CREDIT_CSV.is_file():
        pytest.skip(f"real credit data not found at {CREDIT_CSV}")
    return pd.read_csv(CREDIT_CSV)


@pytest.fixture(scope="session")
def synthetic_frame() -> pd.DataFrame:
    from engine.data.synthetic import make_credit

    return make_credit(rows=3000, seed=0)


@pytest.fixture(scope="session")
def packaged_models(tmp_path_factory: pytest.TempPathFactory, credit_frame: pd.DataFrame,
           synthetic_frame: pd.DataFrame) -> dict[str, Path]:
    """Packaged model folders: credit v1 / v2 (real data, two regularisations) and synth (synthetic)."""
    base = tmp_path_factory.mktemp("packaged")
    train = credit_frame.iloc[:3500]
    return {
        "credit_v1": package_model(train, "Status", "bad", base / "credit_v1", "credit", C=1.0),
        "credit_v2": package_model(train, "Status", "bad", base / "credit_v2", "credit", C=0.02),
        "synth": package_model(synthetic_frame.iloc[:2500], "default", 1, base / "synth", "synth",
                               exclude=("application_id",)),
    }


@pytest.fixture(scope="session")
def credit_heldout(credit_frame: pd.DataFrame) -> pd.DataFrame:
    return credit_frame.iloc[3500:].reset_index(drop=True)


@pytest.fixture(scope="session")
def synth_heldout(synthetic_frame: pd.DataFrame) -> pd.DataFrame:
    return synthetic_frame.iloc[2500:].drop(columns=["application_id"]).reset_index(drop=True)


# ---- the serving environment and a running server ------------------------------------------------
@pytest.fixture(scope="session")
def serving_env() -> Path:
    """The NumPy-1.26 serving venv (created on first use by the project's own set-up code)."""
    from engine.serve.tritonenv import ensure_env

    return ensure_env()


def _env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.setdefault("PYTHONUNBUFFERED", "1")
    e.pop("HYDRA_FULL_ERROR", None)
    return e


class ServeProcess:
    """``trident serve`` running in the background on a repository (its own process group)."""

    def __init__(self, repository: Path, workdir: Path, overrides: list[str] | None = None) -> None:
        self.repository = repository
        self.workdir = workdir
        self.overrides = list(overrides or [])
        self.proc: subprocess.Popen | None = None
        self.log = workdir / f"serve-{repository.name}.log"

    def start(self, timeout_s: float = 120.0) -> dict[str, Any]:
        cmd = [sys.executable, "-m", "engine", "serve", "--foreground", "--repository", str(self.repository),
               *self.overrides]
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=_env(), start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info = self.info()
            if info and info.get("supervisor_pid") == self.proc.pid:
                return info
            if self.proc.poll() is not None:
                raise RuntimeError(f"trident serve exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"trident serve did not start in {timeout_s} s: {self.log.read_text()[-2000:]}")

    def info(self) -> dict[str, Any] | None:
        p = self.repository / ".trident" / "server.json"
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        info = self.info() or {}
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for pid in (self.proc.pid if self.proc else None, info.get("pid")):
            if pid:
                try:
                    os.killpg(int(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        prefix = info.get("shm_prefix")
        if prefix:
            for p in Path("/dev/shm").glob(f"{prefix}*"):
                p.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def serve_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="session")
def triton_repository(serve_workdir: Path) -> Path:
    repo = serve_workdir / "triton_models"
    repo.mkdir()
    return repo


@pytest.fixture(scope="session")
def triton_server(serving_env: Path, triton_repository: Path, serve_workdir: Path):
    """A real Triton server run by ``trident serve`` (watchdog every second); stopped at the end."""
    sp = ServeProcess(triton_repository, serve_workdir, ["deploy.server.watch_interval_s=1"])
    info = sp.start()
    try:
        yield sp
    finally:
        sp.stop()
    from engine.serve.state import pid_alive

    assert sp.proc is not None and sp.proc.poll() is not None
    assert not pid_alive(info["pid"]), "tritonserver outlived its fixture"


def deploy_config(repository: Path, workdir: Path, heldout: pd.DataFrame, extra: list[str] | None = None) -> Any:
    """The config ``trident deploy`` would use for ``repository``, gates on ``heldout``."""
    from engine.serve.settings import load_config

    data = workdir / f"heldout-{abs(hash(tuple(heldout.columns))) % 10**8}.csv"
    if not data.exists():
        heldout.to_csv(data, index=False)
    cfg = load_config([*FAST_GATES, f"deploy.data={data}", f"deploy.records_dir={workdir / 'deployments'}",
                       "deploy.start_server=false", *(extra or [])], str(repository))
    return cfg


def run_deploy(cfg: Any, folder: Path, name: str, version: int) -> dict[str, Any]:
    from engine.export.triton_repo import read_meta
    from engine.serve.deploy import ModelSource, deploy

    src = ModelSource(folder=folder, name=name, version=version, described=str(folder), meta=read_meta(folder))
    return deploy(cfg, src)


def runtime_predict(folder: Path, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The embedded predictor's output for ``frame``."""
    import engine

    out = engine.load(str(folder)).predict(frame)
    return {"score": out["score"].to_numpy(dtype=np.float64), "label": np.asarray(out["label"].astype(str))}


@pytest.fixture(scope="session")
def serving_tools() -> Any:
    """The helpers above, for test modules (conftest modules are not importable by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(deploy_config=deploy_config, run_deploy=run_deploy, runtime_predict=runtime_predict)
