"""Search trials as Dask tasks on a real LocalCluster: identical results to in-process execution."""
from __future__ import annotations

import socket

import numpy as np
import pytest

from engine.cluster import cluster_client, describe_client
from engine.config.base import ClusterConfig, ClusterKind
from engine.errors import ConfigError, TridentError
from engine.train.search import SearchSettings, best_trial, cross_validate, make_folds, plan_trials, refit


def _data(n=500, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)).astype(np.float32)
    z = X[:, 0] - X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + rng.normal(size=n)
    return X, (z > 0.2).astype(np.int64)


def _plans(names=("logistic", "random_forest", "hist_gbdt")):
    spaces = {"logistic": {"C": {"low": 0.01, "high": 10.0, "log": True}},
              "random_forest": {"n_estimators": [10, 20], "max_depth": [3, 6], "max_features": ["sqrt", 0.5]},
              "hist_gbdt": {"learning_rate": {"low": 0.05, "high": 0.3, "log": True}, "max_leaf_nodes": [7, 15]},
              "trident_gbdt": {"learning_rate": [0.1, 0.3], "max_depth": [3, 4], "n_estimators": [30]}}
    return {n: plan_trials(spaces[n], n_trials=2, seed=i + 1) for i, n in enumerate(names)}


def _search(client, names=("logistic", "random_forest", "hist_gbdt")):
    X, y = _data()
    folds = make_folds(y[:400], "binary", 3, seed=7)
    s = SearchSettings("binary", early_stopping_rounds=5)
    res = cross_validate(_plans(names), X[:400], y[:400], folds, s, client=client)
    best = {n: best_trial(r) for n, r in res.items()}
    fitted = refit(best, X[:400], y[:400], X[400:], y[400:], s, client=client)
    scores = {n: [(r.params, r.fold_scores, r.mean) for r in v] for n, v in res.items()}
    preds = {n: np.asarray(f["estimator"].predict_proba(X[400:]))[:, 1] for n, f in fitted.items()}
    return scores, {n: b.params for n, b in best.items()}, preds


def _same(a, b):
    assert a[0] == b[0]  # every trial's params and fold scores, exactly
    assert a[1] == b[1]  # best params
    for n in a[2]:
        assert np.array_equal(a[2][n], b[2][n]), n


def test_a_threaded_local_cluster_gives_the_in_process_results():
    expected = _search(None)
    cfg = ClusterConfig(kind=ClusterKind.local, n_workers=2, threads_per_worker=1, processes=False)
    with cluster_client(cfg) as client:
        assert describe_client(client, "local")["workers"] == 2
        got = _search(client)
    _same(expected, got)


@pytest.mark.slow
def test_worker_processes_give_the_in_process_results():
    names = ("logistic", "random_forest", "hist_gbdt", "trident_gbdt")
    expected = _search(None, names)
    cfg = ClusterConfig(kind=ClusterKind.local, n_workers=2, threads_per_worker=1, processes=True)
    with cluster_client(cfg) as client:
        info = describe_client(client, "local")
        assert info["kind"] == "dask" and info["workers"] == 2
        got = _search(client, names)
    _same(expected, got)


def test_joining_a_running_scheduler_by_address():
    from distributed import LocalCluster

    expected = _search(None, ("logistic",))
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        cfg = ClusterConfig(address=cluster.scheduler_address, timeout_s=5)
        with cluster_client(cfg) as client:
            assert describe_client(client)["scheduler"] == cluster.scheduler_address
            got = _search(client, ("logistic",))
        assert len(cluster.scheduler.workers) == 1  # a joined scheduler is left running
    _same(expected, got)


def test_an_unreachable_scheduler_is_a_clear_error_naming_the_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with pytest.raises(TridentError, match=f"cannot reach the Dask scheduler at {address}"):
        with cluster_client(ClusterConfig(kind=ClusterKind.address, address=address, timeout_s=1)):
            pass


def test_address_kind_without_an_address_is_a_config_error():
    with pytest.raises(ConfigError, match="cluster.address"):
        with cluster_client(ClusterConfig(kind=ClusterKind.address)):
            pass


def test_a_local_cluster_and_an_address_together_are_a_config_error():
    with pytest.raises(ConfigError, match="cluster.address"):
        with cluster_client(ClusterConfig(kind=ClusterKind.local, address="tcp://127.0.0.1:8786")):
            pass


def test_local_cuda_without_dask_cuda_or_a_gpu_is_a_clear_error():
    from engine.backend import compat

    try:
        import dask_cuda  # noqa: F401

        has_dask_cuda = True
    except Exception:
        has_dask_cuda = False
    if has_dask_cuda and compat.nvml_gpu_count() > 0:
        pytest.skip("dask-cuda and a GPU are present: a LocalCUDACluster would start")
    with pytest.raises(TridentError, match="local_cuda"):
        with cluster_client(ClusterConfig(kind=ClusterKind.local_cuda)):
            pass


def test_no_cluster_means_no_client():
    with cluster_client(ClusterConfig()) as client:
        assert client is None
    assert describe_client(None)["kind"] == "in-process"


def test_the_train_stage_on_a_local_cluster_records_the_dask_executor(tmp_path):
    from engine.backend import cpu_backend
    from engine.config import compose
    from engine.pipeline import RunContext
    from engine.registry.manifest import Manifest
    from engine.train.stage import train

    X, y = _data(n=600, seed=3)
    out = {}
    for kind in ("none", "local"):
        cfg = compose(["backend=cpu", "tracking.enabled=false", f"runs_dir={tmp_path}", f"cluster.kind={kind}",
                       "cluster.processes=false", "cluster.n_workers=2"])
        cfg.model.candidates = ["logistic", "random_forest"]
        cfg.model.spaces = {"random_forest": {"n_estimators": [10], "max_depth": [3, 5]}}
        cfg.search.n_trials = 2
        run_dir = tmp_path / kind
        run_dir.mkdir()
        ctx = RunContext(cfg=cfg, run_id=kind, run_dir=run_dir, backend=cpu_backend(), manifest=Manifest(kind, run_dir))
        ctx.state.update(task="binary", X={"train": X[:400], "valid": X[400:500], "test": X[500:]},
                         ysplit={"train": y[:400], "valid": y[400:500], "test": y[500:]})
        train(ctx)
        out[kind] = ([(c.name, c.params, c.cv) for c in ctx.state["candidates"]], ctx.manifest["executor"])
    assert out["none"][0] == out["local"][0]
    assert out["none"][1]["kind"] == "in-process"
    executor = out["local"][1]
    assert executor["kind"] == "dask" and executor["cluster"] == "local" and executor["workers"] == 2
