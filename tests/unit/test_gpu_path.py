"""The GPU path of the features stage, checked without a GPU.

A small stand-in for CuPy (``FakeDevice``: NumPy underneath, but its arrays refuse to be mixed with
host arrays, as CuPy's do) lets the stage's device branch run here. Tolerance of the device transform
against NumPy: float32 output, equal within 1e-6 relative (exact with this stand-in, which computes
with NumPy).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.backend import Backend, cpu_backend, gpu_available
from tests.fake_device import DeviceArray, FakeDevice

REPO = Path(__file__).resolve().parents[2]
#: Relative tolerance of a device transform against the NumPy one (float32 features).
RTOL = 1e-6


def _ctx(tmp_path, backend, name="run"):
    from engine.config import compose
    from engine.pipeline import RunContext
    from engine.registry.manifest import Manifest

    cfg = compose(["backend=cpu", "tracking.enabled=false", f"runs_dir={tmp_path}", "data.date_column=null"])
    run_dir = tmp_path / name
    run_dir.mkdir(parents=True)
    return RunContext(cfg=cfg, run_id=name, run_dir=run_dir, backend=backend, manifest=Manifest(name, run_dir))


def _run_features(tmp_path, backend, name):
    """split + features on a small synthetic credit frame (dates dropped: the split is stratified)."""
    from engine.data.synthetic import make_credit
    from engine.train.stage import features, split

    frame = make_credit(1500, seed=3).drop(columns=["application_date"])
    ctx = _ctx(tmp_path, backend, name)
    ctx.state.update(frame=frame, y=frame["default"].to_numpy(), target="default", task="binary",
                     id_column="application_id")
    split(ctx)
    features(ctx)
    return ctx


def _fake_gpu_backend():
    import pandas

    return Backend("gpu", FakeDevice(), pandas, "sklearn", "gpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu_path")
    return _run_features(tmp, cpu_backend(), "cpu"), _run_features(tmp, _fake_gpu_backend(), "gpu")


def test_cpu_backend_builds_numpy_float32_matrices_equal_to_the_pipeline(runs):
    cpu, _ = runs
    X, pipe, splits = cpu.state["X"], cpu.state["features"], cpu.state["splits"]
    frame = cpu.state["frame"]
    for k in ("train", "valid", "test"):
        assert type(X[k]) is np.ndarray and X[k].dtype == np.float32 and X[k].flags.f_contiguous
    for k in ("valid", "test"):
        rows = frame.iloc[np.asarray(splits[k])].reset_index(drop=True)
        np.testing.assert_array_equal(X[k], pipe.transform(rows[pipe.input_columns_]))
    assert "X_device" not in cpu.state
    assert cpu.manifest["features_device"] == {"device": "host", "array": "numpy", "fit": "host",
                                               "transform": "numpy"}


def test_gpu_backend_leaves_device_matrices_and_host_copies(runs):
    _, gpu = runs
    dev, host = gpu.state["X_device"], gpu.state["X"]
    for k in ("train", "valid", "test"):
        assert isinstance(dev[k], DeviceArray)
        assert type(host[k]) is np.ndarray and host[k].dtype == np.float32
        np.testing.assert_array_equal(host[k], np.asarray(dev[k]))
    rec = gpu.manifest["features_device"]
    assert rec["device"] == "gpu" and rec["array"] == "fake_device" and rec["fit"].startswith("device")
    assert rec["shapes"]["test"] == list(host["test"].shape)


def test_gpu_backend_matrices_equal_the_cpu_ones_within_the_tolerance(runs):
    cpu, gpu = runs
    for k in ("train", "valid", "test"):
        np.testing.assert_allclose(gpu.state["X"][k], cpu.state["X"][k], rtol=RTOL, atol=RTOL)


def test_gpu_backend_writes_the_same_feature_artifacts(runs):
    cpu, gpu = runs
    for rel in ("features/features.npz", "features/features.json"):
        assert (cpu.run_dir / rel).read_bytes() == (gpu.run_dir / rel).read_bytes(), rel
    reports = [json.loads((c.run_dir / "features_report.json").read_text()) for c in (cpu, gpu)]
    for r in reports:
        r.pop("fit_seconds")
    assert reports[0] == reports[1]


def test_train_stage_fits_a_host_estimator_after_the_gpu_features(runs):
    from engine.train.stage import train

    _, gpu = runs
    gpu.cfg.model.candidates = ["logistic"]
    gpu.cfg.search.enabled = False
    gpu.cfg.search.folds = 2
    train(gpu)
    (cand,) = gpu.state["candidates"]
    assert cand.library == "sklearn" and np.isfinite(cand.cv["mean"])
    proba = cand.estimator.predict_proba(gpu.state["X"]["test"])
    assert proba.shape == (gpu.state["X"]["test"].shape[0], 2)


def test_pipeline_transform_on_a_device_namespace_with_pca_equals_numpy():
    """The reduction step too (matrix product in float64) runs through ``xp``."""
    import pandas as pd

    from engine.features import FeaturePipeline

    rng = np.random.default_rng(7)
    n = 600
    df = pd.DataFrame({f"x{i}": np.where(rng.random(n) < 0.05, np.nan, rng.normal(size=n)) for i in range(6)})
    df["c"] = rng.choice(["a", "b", "c", None], n).astype(object)
    fp = FeaturePipeline(reduce="pca", n_components=3).fit(df)
    got = fp.transform(df, xp=FakeDevice())
    assert isinstance(got, DeviceArray) and got.dtype == np.float32
    np.testing.assert_allclose(np.asarray(got), fp.transform(df), rtol=RTOL, atol=RTOL)


@pytest.mark.skipif(gpu_available()[0], reason="a GPU is present: backend=gpu is valid there")
def test_backend_gpu_without_a_gpu_fails_at_run_start_with_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, "-m", "engine", "run", "backend=gpu", "data.rows=500", "tracking=off",
                           f"runs_dir={tmp_path / 'runs'}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "backend=gpu" in lines[0] and "no GPU" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def _gbdt_settings(device):
    from engine.train.search import SearchSettings

    return SearchSettings("binary", early_stopping=False, device=device)


def test_search_fits_device_estimators_from_the_device_matrix_alone(runs):
    """With the matrix on the device, a fold fit of an estimator that takes device arrays reads rows of the
    device copy (indices moved to the device first) and never the host matrix; the score equals the CPU fit's."""
    from engine.train.search import DeviceMatrices, FitTask, fit_fold, make_folds

    cpu, gpu = runs
    y = gpu.state["ysplit"]["train"]
    folds = make_folds(y, "binary", 3, seed=5)
    params = {"n_estimators": 20, "max_depth": 3}
    dev = DeviceMatrices(FakeDevice(), gpu.state["X_device"]["train"])
    on_device = fit_fold(FitTask("trident_gbdt", 0, 1, params, 11, _gbdt_settings("gpu")), None, y, folds, device=dev)
    on_host = fit_fold(FitTask("trident_gbdt", 0, 1, params, 11, _gbdt_settings("cpu")), cpu.state["X"]["train"], y,
                       folds)
    assert on_device["error"] is None, on_device["error"]
    assert on_device["score"] == pytest.approx(on_host["score"], abs=1e-12)


def test_train_stage_on_the_gpu_backend_hands_trident_gbdt_the_device_matrices(runs):
    from engine.train.stage import train

    cpu, gpu = runs
    out = {}
    for ctx in (cpu, gpu):
        ctx.cfg.model.candidates = ["trident_gbdt"]
        ctx.cfg.search.enabled = False
        ctx.cfg.search.folds = 2
        ctx.cfg.search.max_rows = 800  # the CV sample is taken on the device
        train(ctx)
        rec = json.loads((ctx.run_dir / "candidates.json").read_text())
        out[ctx.run_id] = (ctx.state["candidates"][0], rec["inputs"]["estimators"])
    (c_cand, c_inputs), (g_cand, g_inputs) = out["cpu"], out["gpu"]
    assert c_inputs.startswith("host arrays") and g_inputs.startswith("device matrices")
    assert g_cand.cv["mean"] == pytest.approx(c_cand.cv["mean"], abs=1e-12)
    X = cpu.state["X"]["test"]
    np.testing.assert_allclose(g_cand.estimator.predict_proba(X), c_cand.estimator.predict_proba(X), rtol=1e-12)


def test_evaluation_scores_device_estimators_on_the_device_matrices(runs):
    """evaluate + select on a GPU run: trident_gbdt is scored on the device matrices, logistic regression
    on the host copies, and every metric equals the CPU run's (tolerance 1e-9)."""
    from engine.evaluate.stage import evaluate, select
    from engine.train.stage import train

    reports = {}
    for ctx in runs:
        ctx.cfg.model.candidates = ["trident_gbdt", "logistic"]
        ctx.cfg.search.enabled = False
        ctx.cfg.search.folds = 2
        train(ctx)
        evaluate(ctx)
        select(ctx)
        reports[ctx.run_id] = json.loads((ctx.run_dir / "evaluation.json").read_text())
    cpu, gpu = reports["cpu"], reports["gpu"]
    where = {r["name"]: r["scored_on"] for r in gpu["candidates"]}
    assert where == {"trident_gbdt": "device", "logistic": "host"}
    assert {r["scored_on"] for r in cpu["candidates"]} == {"host"}
    for c, g in zip(cpu["candidates"], gpu["candidates"]):
        assert c["name"] == g["name"]
        for k, v in c["valid"].items():
            if isinstance(v, float):
                assert g["valid"][k] == pytest.approx(v, rel=1e-9, abs=1e-12), (c["name"], k)
    assert gpu["test"]["candidate"] == cpu["test"]["candidate"]
    assert gpu["test"]["scored_on"] == where[gpu["test"]["candidate"]]
    for k, v in cpu["test"]["metrics"].items():
        if isinstance(v, float):
            assert gpu["test"]["metrics"][k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
