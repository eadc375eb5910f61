"""A real Triton server run by ``trident serve``: deploy with gates, parity, malformed requests, load,
refused deployments, rollback under load, watchdog repairs. The tests run in file order on one server."""
from __future__ import annotations

import json
import re
import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from engine.errors import GateFailed
from engine.serve import state
from engine.serve.client import PipelineClient, make_inputs
from engine.serve.columns import take, to_columns
from engine.serve.loadtest import closed_loop

pytestmark = pytest.mark.triton
UNCLEAN = re.compile(r"Traceback|File \"|\.py\b|/tmp/|/work/")


@pytest.fixture(scope="module")
def served(triton_server, triton_repository, serve_workdir, packaged_models, credit_heldout, synth_heldout,
           serving_tools):
    """credit v1 and synth v1 deployed through every gate."""
    t = serving_tools
    cfg = t.deploy_config(triton_repository, serve_workdir, credit_heldout)
    credit = t.run_deploy(cfg, packaged_models["credit_v1"], "credit", 1)
    cfg_s = t.deploy_config(triton_repository, serve_workdir, synth_heldout)
    synth = t.run_deploy(cfg_s, packaged_models["synth"], "synth", 1)
    return {"url": triton_server.info()["grpc_url"], "credit": credit, "synth": synth, "server": triton_server,
            "tools": t}


def _client(served, name="credit", version=None):
    return PipelineClient(served["url"], name, version=version)


def _assert_serving(served, name="credit"):
    with _client(served, name) as c:
        frame = c.schema  # noqa: F841 - the schema call itself must work
        out = c.infer({s["name"]: np.array([np.nan]) if s["kind"] == "numeric" else np.array([None], dtype=object)
                       for s in c.schema.columns})
    assert out["score"].shape == (1,) and np.isfinite(out["score"]).all()


# ---- deploy, parity ------------------------------------------------------------------------------
def test_deploy_promotes_after_every_gate_passed(served, triton_repository):
    rec = served["credit"]
    assert rec["status"] == "promoted" and rec["served_version"] == 1
    assert {g: r["passed"] for g, r in rec["gates"].items()} == {"parity": True, "integration": True, "load_test": True}
    assert state.served_version(triton_repository, "credit") == 1
    assert not (triton_repository / "credit__candidate").exists()


def test_served_credit_predictions_equal_the_embedded_predictor(served, packaged_models, credit_heldout):
    with _client(served) as c:
        got = c.predict(credit_heldout)
    want = served["tools"].runtime_predict(packaged_models["credit_v1"], credit_heldout)
    assert np.max(np.abs(got["score"].to_numpy() - want["score"])) <= 1e-6
    assert (got["label"].astype(str).to_numpy() == want["label"]).all()
    assert len(got) == len(credit_heldout) > 256  # sent in several requests of max_batch_size rows


def test_served_synthetic_predictions_equal_the_embedded_predictor(served, packaged_models, synth_heldout):
    assert served["synth"]["gates"]["parity"]["max_abs_score_diff"] <= 1e-6
    with _client(served, "synth") as c:
        got = c.predict(synth_heldout.iloc[:300])
    want = served["tools"].runtime_predict(packaged_models["synth"], synth_heldout.iloc[:300])
    assert np.max(np.abs(got["score"].to_numpy() - want["score"])) <= 1e-6


def test_deployment_record_is_written(served, serve_workdir):
    rec = served["credit"]
    path = serve_workdir / "deployments" / f"{rec['id']}.json"
    on_disk = json.loads(path.read_text())
    assert on_disk["status"] == "promoted" and on_disk["gates"]["parity"]["rows"] == 200


# ---- malformed requests ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def request_parts(served, credit_heldout):
    with _client(served) as c:
        schema = c.schema
    row = to_columns(credit_heldout.iloc[:1], schema.columns)
    return schema, row


def _send(served, inputs):
    client = grpcclient.InferenceServerClient(served["url"])
    try:
        res = client.infer("credit", inputs)
        return {"score": res.as_numpy("score").reshape(-1), "label": res.as_numpy("label").reshape(-1)}, None
    except grpcclient.InferenceServerException as exc:
        return None, exc.message()
    finally:
        client.close()


def _tensor(name, arr, wire):
    t = grpcclient.InferInput(name, list(arr.shape), wire)
    t.set_data_from_numpy(arr)
    return t


def _replace(schema, row, column, tensor):
    inputs = make_inputs(schema, row)
    keep = [t for t, s in zip(inputs, schema.columns) if s["name"] != column]
    return keep if tensor is None else keep + [tensor]


def _clean_error(msg):
    assert msg and "\n" not in msg and not UNCLEAN.search(msg), msg


def test_wrong_dtype_gets_a_clean_error(served, request_parts):
    schema, row = request_parts
    out, msg = _send(served, _replace(schema, row, "Income", _tensor("Income", np.array([[1.0]], np.float32), "FP32")))
    assert out is None and "Income" in msg and "FP64" in msg
    _clean_error(msg)
    _assert_serving(served)


def test_text_in_a_numeric_column_gets_a_clean_error(served, request_parts):
    schema, row = request_parts
    out, msg = _send(served, _replace(schema, row, "Age", _tensor("Age", np.array([[b"old"]], object), "BYTES")))
    assert out is None and "Age" in msg
    _clean_error(msg)
    _assert_serving(served)


def test_wrong_shape_gets_a_clean_error(served, request_parts):
    schema, row = request_parts
    out, msg = _send(served, _replace(schema, row, "Income", _tensor("Income", np.zeros((1, 3)), "FP64")))
    assert out is None and "shape" in msg
    _clean_error(msg)
    _assert_serving(served)


def test_missing_input_gets_a_clean_error(served, request_parts):
    schema, row = request_parts
    out, msg = _send(served, _replace(schema, row, "Home", None))
    assert out is None and "Home" in msg
    _clean_error(msg)
    _assert_serving(served)


def test_empty_batch_gets_a_clean_error(served, request_parts):
    schema, row = request_parts
    out, msg = _send(served, make_inputs(schema, take(row, slice(0, 0))))
    assert out is None or out["score"].size == 0
    if out is None:
        _clean_error(msg)
    _assert_serving(served)


def test_batch_over_the_maximum_gets_a_clean_error(served, request_parts):
    schema, row = request_parts
    big = take(row, np.zeros(schema.max_batch_size + 1, dtype=np.int64))
    out, msg = _send(served, make_inputs(schema, big))
    assert out is None and f"<= {schema.max_batch_size}" in msg
    _clean_error(msg)
    _assert_serving(served)


def test_unknown_category_gets_the_documented_answer(served, request_parts, packaged_models):
    schema, row = request_parts
    odd = dict(row)
    odd["Home"] = np.array(["a-home-never-seen"], dtype=object)
    out, msg = _send(served, make_inputs(schema, odd))
    assert msg is None
    from engine.export.pipeline_runtime import PipelineRuntime

    want = PipelineRuntime.load(str(packaged_models["credit_v1"])).predict(odd)
    assert abs(out["score"][0] - want["score"][0]) <= 1e-6 and out["label"][0].decode() == want["label"][0]


def test_nan_inputs_get_the_documented_answer(served, request_parts, packaged_models):
    schema, row = request_parts
    nan_row = {k: (np.array([np.nan]) if v.dtype == np.float64 else v) for k, v in row.items()}
    out, msg = _send(served, make_inputs(schema, nan_row))
    assert msg is None and np.isfinite(out["score"]).all()
    from engine.export.pipeline_runtime import PipelineRuntime

    want = PipelineRuntime.load(str(packaged_models["credit_v1"])).predict(nan_row)
    assert abs(out["score"][0] - want["score"][0]) <= 1e-6


def test_bytes_that_are_not_utf8_are_answered_or_cleanly_refused(served, request_parts):
    schema, row = request_parts
    out, msg = _send(served, _replace(schema, row, "Job", _tensor("Job", np.array([[b"\xff\xfe"]], object), "BYTES")))
    assert out is not None or (_clean_error(msg) is None)
    _assert_serving(served)


def test_integration_gate_recorded_every_case(served):
    cases = served["credit"]["gates"]["integration"]["cases"]
    assert {"wrong_dtype", "wrong_shape", "missing_input", "empty_batch", "batch_over_maximum", "unknown_category",
            "nan"} <= set(cases)
    assert all(c["passed"] and c["served_after"] for c in cases.values())


# ---- load ----------------------------------------------------------------------------------------
def test_small_closed_loop_load_test_has_no_errors(served, request_parts):
    schema, row = request_parts

    def make():
        client = grpcclient.InferenceServerClient(served["url"])
        inputs = make_inputs(schema, row)
        return lambda: client.infer("credit", inputs)

    r = closed_loop(make, concurrency=4, duration_s=1.0, max_requests=2000)
    assert r.requests > 20 and r.errors == 0
    assert r.p50_ms <= r.p99_ms <= r.max_ms


def test_load_test_gate_reports_latency_and_throughput(served):
    runs = served["credit"]["gates"]["load_test"]["runs"]
    assert [r["mode"] for r in runs] == ["closed", "closed", "open"]
    for r in runs:
        assert r["errors"] == 0 and r["throughput"] > 0 and 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]


# ---- refused deployment, rollback ---------------------------------------------------------------------
@pytest.mark.slow
def test_a_failing_gate_refuses_the_deployment_and_the_old_version_keeps_serving(
        served, triton_repository, serve_workdir, packaged_models, credit_heldout):
    cfg = served["tools"].deploy_config(triton_repository, serve_workdir, credit_heldout,
                        ["deploy.load_test.p99_ms=[0.001]", "deploy.load_test.open_loop_rate=0"])
    with pytest.raises(GateFailed, match=r"load_test.*p99.*SLO 0.001 ms.*version 1 keeps serving"):
        served["tools"].run_deploy(cfg, packaged_models["credit_v2"], "credit", 2)
    assert state.served_version(triton_repository, "credit") == 1
    with _client(served) as c:
        got = c.predict(credit_heldout.iloc[:50])
    want = served["tools"].runtime_predict(packaged_models["credit_v1"], credit_heldout.iloc[:50])
    assert np.max(np.abs(got["score"].to_numpy() - want["score"])) <= 1e-6
    refused = [json.loads(p.read_text()) for p in (serve_workdir / "deployments").glob("*.json")]
    assert any(r["status"] == "refused" and r["version"] == 2 for r in refused)


@pytest.mark.slow
def test_rollback_under_load_has_no_failed_request(served, triton_repository, serve_workdir, packaged_models,
                                                   credit_heldout, request_parts):
    from engine.serve.deploy import rollback

    cfg = served["tools"].deploy_config(triton_repository, serve_workdir, credit_heldout)
    served["tools"].run_deploy(cfg, packaged_models["credit_v2"], "credit", 2)
    assert state.served_version(triton_repository, "credit") == 2
    schema, row = request_parts
    stop = threading.Event()
    results: list[str | None] = []
    lock = threading.Lock()

    def hammer():
        client = grpcclient.InferenceServerClient(served["url"])
        inputs = make_inputs(schema, row)
        while not stop.is_set():
            try:
                client.infer("credit", inputs, client_timeout=10)
                err = None
            except Exception as exc:  # noqa: BLE001
                err = str(exc)
            with lock:
                results.append(err)
        client.close()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    rec = rollback(cfg, "credit", to=1, reason="test: v2 misbehaves")
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    failures = [e for e in results if e is not None]
    assert len(results) > 20 and failures == []
    assert rec["switch_seconds"] < 1.0
    assert state.served_version(triton_repository, "credit") == 1
    with _client(served) as c:
        got = c.predict(credit_heldout.iloc[:20])
    want = served["tools"].runtime_predict(packaged_models["credit_v1"], credit_heldout.iloc[:20])
    assert np.max(np.abs(got["score"].to_numpy() - want["score"])) <= 1e-6


@pytest.mark.slow
def test_rollback_is_persisted_and_recorded(served, triton_repository, serve_workdir):
    from engine.export.triton_config import served_versions
    from engine.export.triton_repo import read_config

    assert served_versions(read_config(triton_repository, "credit")) == [1]
    last = state.read_served(triton_repository)["models"]["credit"]["history"][-1]
    assert last["event"] == "rollback" and last["reason"] == "test: v2 misbehaves" and last["previous"] == 2
    records = [json.loads(p.read_text()) for p in (serve_workdir / "deployments").glob("*.json")]
    assert any(r["kind"] == "rollback" and r["version"] == 1 and r["from_version"] == 2 for r in records)


# ---- the watchdog -------------------------------------------------------------------------------------
def _wait_for_event(repository, event, since, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        hits = [e for e in state.read_events(repository)[since:] if e["event"] == event]
        if hits:
            return hits[0]
        time.sleep(0.2)
    raise AssertionError(f"no {event!r} event in {timeout_s} s: {state.read_events(repository)[since:]}")


@pytest.mark.slow
def test_a_killed_stub_is_detected_and_reloaded(served, triton_repository):
    import psutil

    server_pid = served["server"].info()["pid"]
    stubs = [p for p in psutil.Process(server_pid).children(recursive=True)
             if "triton_python_backend_stub" in " ".join(p.cmdline()) and "/credit/1/" in " ".join(p.cmdline())]
    assert stubs, "no stub process for credit version 1"
    since = len(state.read_events(triton_repository))
    for stub in stubs:  # a replaced instance may still be shutting down: kill every one of version 1
        stub.kill()
    healed = _wait_for_event(triton_repository, "healed", since)
    assert healed["model"] == "credit" and healed["version"] == 1
    _assert_serving(served)


@pytest.mark.slow
def test_a_dead_server_is_restarted_with_the_persisted_version(served, triton_repository, packaged_models,
                                                               credit_heldout):
    import os
    import signal

    info = served["server"].info()
    since = len(state.read_events(triton_repository))
    os.killpg(int(info["pid"]), signal.SIGKILL)
    _wait_for_event(triton_repository, "restarted", since, timeout_s=90)
    after = served["server"].info()
    assert after["pid"] != info["pid"] and after["grpc_url"] == info["grpc_url"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with _client(served) as c:
                got = c.predict(credit_heldout.iloc[:20])
            break
        except Exception:  # noqa: BLE001 - models still loading
            time.sleep(0.3)
    # version 2 is on disk, version 1 is the one served
    want = served["tools"].runtime_predict(packaged_models["credit_v1"], credit_heldout.iloc[:20])
    assert np.max(np.abs(got["score"].to_numpy() - want["score"])) <= 1e-6
    assert (triton_repository / "credit" / "2").is_dir()
