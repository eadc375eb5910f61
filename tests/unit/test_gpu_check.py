"""bench/gpu_check.py on a machine without a GPU: a clear message and exit status 0."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.backend import gpu_available

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(gpu_available()[0], reason="a GPU is present: bench/gpu_check.py runs the full check there")
def test_gpu_check_says_no_gpu_and_exits_zero(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no GPU" in proc.stdout
    assert json.loads((tmp_path / "gpu_check.json").read_text())["gpu"] is False


#: Checks the smoke test runs: the script's own glue around the kernels (the CUDA twins themselves are
#: tested under the simulator in tests/cudasim; the slow ones are left to a manual ``--smoke`` run).
SMOKE_CHECKS = ("feature pipeline|drift compare|bench features|category_counts|hashing|gbdt_loss|LocalCUDA|"
                "launch overhead|pytest -m gpu")


def test_gpu_check_smoke_run_passes_every_check_on_the_cupy_standin(tmp_path):
    """``--smoke`` with NumPy posing as CuPy and the CUDA simulator: each selected check runs to a row
    (``ok``, or ``skip`` where a package is absent), none raises."""
    env = {**os.environ, "OUT": str(tmp_path), "NUMBA_ENABLE_CUDASIM": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "cupy_standin"), str(REPO),
                                          os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--smoke", "--budget", "600",
                           "--only", SMOKE_CHECKS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    payload = json.loads((tmp_path / "gpu_check.json").read_text())
    assert payload["smoke"] is True and "partial" not in payload
    rows = {r["check"]: r for r in payload["checks"]}
    assert len(rows) == 9, sorted(rows)
    for name, r in rows.items():
        assert r["status"] in ("ok", "skip"), (name, r["detail"], r["metrics"].get("traceback"))
        assert "traceback" not in r["metrics"], name
    assert sum(r["status"] == "ok" for r in rows.values()) >= 7
    assert rows["pytest -m gpu"]["status"] == "skip"  # the gpu-marked tests ran and skipped: no GPU here
    assert "| check" in proc.stdout  # the printed table


def test_gpu_check_only_with_no_match_is_an_error(tmp_path):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "cupy_standin"), str(REPO)])}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--smoke", "--only", "no-such-check"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "no check matches --only 'no-such-check'" in proc.stderr


def test_stages_check_passes_on_a_device_stand_in(monkeypatch):
    """The stages check's own glue (config overrides, stage calls, the records it reads) on FakeDevice,
    whose estimators run the CPU twins: fast enough for CI, unlike the CUDA simulator."""
    import pandas

    from bench import gpu_check
    from engine.backend import Backend
    from tests.fake_device import FakeDevice

    monkeypatch.setattr(gpu_check, "_gpu_backend", lambda: Backend("gpu", FakeDevice(), pandas, "sklearn", "gpu"))
    status, detail, metrics = gpu_check.check_stages(rows=3000, trees=3, depth=3)
    assert status == "ok", detail
    assert metrics["runs"]["gpu"]["scored_on"] == "device" and metrics["runs"]["cpu"]["scored_on"] == "host"
    assert metrics["record"]["fit"].startswith("device")
    assert abs(metrics["valid_auc_diff"]) <= gpu_check.GBDT_AUC_TOL


def test_cluster_check_runs_the_train_stage_on_dask_workers(monkeypatch):
    """The LocalCUDACluster check's glue with ``cluster=local`` (CPU workers) and FakeDevice: the CV folds
    and the refit run as Dask tasks on the workers and score as in-process."""
    import pandas

    from bench import gpu_check
    from engine.backend import Backend
    from tests.fake_device import FakeDevice

    monkeypatch.setattr(gpu_check, "_gpu_backend", lambda: Backend("gpu", FakeDevice(), pandas, "sklearn", "gpu"))
    status, detail, metrics = gpu_check.check_local_cuda_cluster(rows=3000, trees=3, kind="local")
    assert status == "ok", detail
    assert metrics["executor"]["cluster"] == "local" and metrics["executor"]["workers"] >= 1
    assert metrics["inputs"].startswith("host arrays scattered")
    assert abs(metrics["cv_auc"] - metrics["cv_auc_in_process"]) <= gpu_check.GBDT_AUC_TOL


def test_sticky_cuda_errors_are_told_from_others():
    from bench.gpu_check import sticky_cuda_error

    assert sticky_cuda_error(RuntimeError("cudaErrorIllegalAddress: an illegal memory access was encountered"))
    assert sticky_cuda_error(RuntimeError("[700] Call to cuCtxSynchronize results in CUDA_ERROR_ILLEGAL_ADDRESS"))
    assert sticky_cuda_error(RuntimeError("CUDA_ERROR_LAUNCH_FAILED: unspecified launch failure"))
    try:  # chained: the error a wrapper raised while handling the CUDA one
        try:
            raise RuntimeError("CUDA_ERROR_MISALIGNED_ADDRESS")
        except RuntimeError as inner:
            raise ValueError("fit failed") from inner
    except ValueError as outer:
        assert sticky_cuda_error(outer)
    assert not sticky_cuda_error(RuntimeError("CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: too many resources requested"))
    assert not sticky_cuda_error(AssertionError("AUC differs"))


def test_checks_after_a_sticky_cuda_error_run_in_a_fresh_process(tmp_path, monkeypatch, capsys):
    """A check that poisons the CUDA context: the rest of the list runs in a new process (here the real
    hashing check, on the simulator and the CuPy stand-in) and its rows join this run's table."""
    from bench import gpu_check

    def boom():
        raise RuntimeError("cudaErrorIllegalAddress: an illegal memory access was encountered")

    real = gpu_check._checks

    def checks(args):
        return [("boom", boom, 1), *[c for c in real(args) if c[0] == "hashing"]]

    monkeypatch.setattr(gpu_check, "_checks", checks)
    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "tests" / "cupy_standin"), str(REPO)]))
    assert gpu_check.main(["--smoke", "--budget", "300"]) == 1  # the first check failed
    payload = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = {r["check"]: r for r in payload["checks"]}
    assert list(rows) == ["boom", "hashing"]
    assert rows["boom"]["status"] == "FAIL" and rows["boom"]["metrics"]["sticky_cuda_error"] is True
    assert rows["hashing"]["status"] == "ok", rows["hashing"]
    assert rows["hashing"]["detail"].endswith("[fresh process after a CUDA error]")
    assert "remaining check(s) in a fresh process" in capsys.readouterr().out
