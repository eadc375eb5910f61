"""Serving: the exported pipeline on Triton vs `mlflow models serve` and FastAPI + scikit-learn (wrk).

One model (the real credit data: Trident's fitted features + a logistic regression), three servers on
this machine, each with one worker / instance, all loaded the same way: ``wrk`` (one thread, keep-alive
connections = concurrency) POSTing one raw row as JSON (Triton: KServe v2 JSON on its HTTP port).
Triton's gRPC figures come separately (a Python closed loop, one client per thread, which is itself a
bottleneck on two cores). ``--layout single,ensemble`` also compares Trident's two Triton layouts.

    python -m bench serve                       # Triton (single) + both baselines, c = 1, 8, 32
    python -m bench serve --layout single,ensemble --skip-baselines
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CREDIT = ROOT.parent / "shared" / "data" / "credit_data.csv"


# ---- the model --------------------------------------------------------------------------------------
def build_model(work: Path) -> tuple[Path, Any, Any]:
    """Package the credit model; returns (model folder, a held-out frame, the fitted sklearn estimator)."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from engine.export.onnx import export
    from engine.features import FeaturePipeline
    from engine.registry.package import write_model_folder

    from bench._serve_baselines import save_logistic

    df = pd.read_csv(CREDIT)
    train, held = df.iloc[:3500], df.iloc[3500:].reset_index(drop=True)
    y = (train["Status"] == "bad").astype(int).to_numpy()
    pipe = FeaturePipeline()
    X = pipe.fit_transform(train.drop(columns=["Status"]), y)
    lr = LogisticRegression(max_iter=2000).fit(X, y)
    onnx_model, _ = export(lr, X[:500], "binary", tolerance=1e-4, name="bench_logistic")
    folder = work / "model"
    write_model_folder(folder, onnx_model=onnx_model, features=pipe, task="binary", name="credit",
                       candidate="logistic", library="sklearn", threshold=0.5, labels={"0": "good", "1": "bad"},
                       run_id="bench")
    save_logistic(lr, str(folder / "logistic.json"))
    return folder, held.drop(columns=["Status"]), lr


# ---- processes --------------------------------------------------------------------------------------
def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log and log.exists() else []
            raise RuntimeError(f"server exited with code {proc.returncode}: {' | '.join(tail)}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 - loopback
                if r.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout_s} s")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e["PATH"] = str(Path(sys.executable).parent) + os.pathsep + e.get("PATH", "")  # uvicorn, mlflow
    return e


# ---- wrk ---------------------------------------------------------------------------------------------
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text.strip())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(url: str, body: str, concurrency: int, seconds: float, work: Path) -> dict[str, Any]:
    """Run wrk (1 thread, ``concurrency`` connections) POSTing ``body``; parse its latency and rate."""
    script = work / "post.lua"
    script.write_text("wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
                      f"wrk.body = {json.dumps(body)}\n")
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, int(seconds))}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, flags=re.M))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    n_err = (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in errs.groups()) if errs else 0)
    return {"concurrency": concurrency, "throughput": float(rate.group(1)) if rate else 0.0,
            "p50_ms": _ms(pct.get("50", "nan")), "p99_ms": _ms(pct.get("99", "nan")),
            "requests": int(total.group(1)) if total else 0, "errors": n_err}


# ---- the three servers ---------------------------------------------------------------------------------
def start_triton(folder: Path, held: Any, work: Path, layout: str) -> tuple[Any, str, str]:
    """Export and serve the model with Triton; returns (server, HTTP infer URL, KServe v2 JSON body)."""
    from engine.config import compose
    from engine.export.triton_repo import export_model, read_meta
    from engine.serve import rollout
    from engine.serve.columns import to_columns, to_json_rows
    from engine.serve.server import TritonServer, pick_ports
    from engine.serve.tritonenv import ensure_env, locate_server

    cfg = compose([f"deploy.export.layout={layout}"]).deploy
    env = ensure_env(cfg.server.env_path)
    repo = work / f"repo-{layout}"
    specs = read_meta(str(folder))["input_columns"]
    cols = to_columns(held.iloc[:64], specs)
    export_model(folder, repo, 1, cfg.export, to_json_rows(cols, specs), env_path=env)
    server = TritonServer(repo, locate_server(env), "127.0.0.1", pick_ports("127.0.0.1"), work / f"triton-{layout}.log")
    server.start(120)
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.ports.grpc}")
    rollout.load_persisted(client, repo, "credit", 1)
    client.close()
    from engine.export.triton_repo import read_config
    from engine.export.triton_config import column_specs

    inputs = []
    for spec, tensor in zip(specs, column_specs(read_config(repo, "credit"))):
        v = cols[spec["name"]][0]
        numeric = spec["kind"] == "numeric"
        inputs.append({"name": tensor["tensor"], "shape": [1, 1], "datatype": "FP64" if numeric else "BYTES",
                       "data": [None if numeric and np.isnan(v) else (float(v) if numeric else (v or ""))]})
    body = json.dumps({"inputs": inputs})
    url = f"http://127.0.0.1:{server.ports.http}/v2/models/credit/infer"
    return server, url, body


def start_fastapi(folder: Path, held: Any, work: Path) -> tuple[subprocess.Popen, str, str]:
    from engine.serve.server import free_port

    port = free_port()
    env = _env()
    env["BENCH_MODEL_DIR"] = str(folder)
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench._serve_baselines:app", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"],
                            cwd=ROOT, env=env, stdout=open(work / "fastapi.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    _wait_http(f"http://127.0.0.1:{port}/docs", 120, proc, work / "fastapi.log")
    row = json.loads(held.iloc[:1].to_json(orient="records"))[0]
    return proc, f"http://127.0.0.1:{port}/predict", json.dumps(row)


def start_mlflow(folder: Path, held: Any, work: Path) -> tuple[subprocess.Popen, str, str]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mlflow

    from bench._serve_baselines import PipelinePyfunc
    from engine.serve.server import free_port

    uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench-serve")
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name="model", python_model=PipelinePyfunc(), artifacts={"model": str(folder)},
                                pip_requirements=["mlflow"])
    port = free_port()
    env = _env()
    env["MLFLOW_TRACKING_URI"] = uri
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    proc = subprocess.Popen([mlflow_bin, "models", "serve", "-m", f"runs:/{run.info.run_id}/model", "-h", "127.0.0.1",
                             "-p", str(port), "--env-manager", "local", "-w", "1"], cwd=work, env=env,
                            stdout=open(work / "mlflow.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    _wait_http(f"http://127.0.0.1:{port}/ping", 180, proc, work / "mlflow.log")
    body = json.dumps({"dataframe_split": json.loads(held.iloc[:1].to_json(orient="split", index=False))})
    return proc, f"http://127.0.0.1:{port}/invocations", body


def _check(url: str, body: str) -> None:
    req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}")


def grpc_figures(server: Any, held: Any, folder: Path, concurrencies: list[int],
                 seconds: float) -> list[dict[str, Any]]:
    from engine.export.triton_repo import read_meta
    from engine.serve.client import PipelineClient, make_inputs
    from engine.serve.columns import take, to_columns
    from engine.serve.loadtest import closed_loop, grpc_worker_factory

    url = f"127.0.0.1:{server.ports.grpc}"
    with PipelineClient(url, "credit") as c:
        schema = c.schema
    cols = to_columns(held, read_meta(str(folder))["input_columns"])
    make = grpc_worker_factory(url, "credit", None, lambda i: make_inputs(schema, take(cols, [i % len(held)])))
    out = []
    for c in concurrencies:
        r = closed_loop(make, c, seconds, warmup=5)
        out.append({"concurrency": c, "throughput": r.throughput, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
                    "requests": r.requests, "errors": r.errors})
    return out


# ---- main ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from bench.common import print_table, write_results

    p = argparse.ArgumentParser(prog="python -m bench serve", description=__doc__.splitlines()[0])
    p.add_argument("--layout", default="single", help="Triton layouts to measure: single, ensemble or both (comma)")
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated concurrencies")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per wrk run")
    p.add_argument("--skip-baselines", action="store_true", help="Triton only")
    p.add_argument("--no-grpc", action="store_true", help="skip the gRPC figures")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench serve: needs `wrk` (Debian package: apt-get install wrk)", file=sys.stderr)
        return 2
    concs = [int(c) for c in args.concurrency.split(",")]
    layouts = [x.strip() for x in args.layout.split(",") if x.strip()]
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    rows: list[list[Any]] = []
    results: dict[str, Any] = {"concurrency": concs, "seconds": args.seconds, "servers": {}, "grpc": {}}
    try:
        folder, held, _ = build_model(work)
        servers: list[tuple[str, Any]] = [(f"triton-{lay}", lay) for lay in layouts]
        if not args.skip_baselines:
            servers += [("mlflow-serve", "mlflow"), ("fastapi-sklearn", "fastapi")]
        for label, kind in servers:
            handle = None
            try:
                if kind == "mlflow":
                    handle, url, body = start_mlflow(folder, held, work)
                elif kind == "fastapi":
                    handle, url, body = start_fastapi(folder, held, work)
                else:
                    handle, url, body = start_triton(folder, held, work, kind)
                _check(url, body)
                runs = []
                for c in concs:
                    wrk(url, body, c, 1, work)  # warm-up
                    r = wrk(url, body, c, args.seconds, work)
                    runs.append(r)
                    rows.append([label, c, r["throughput"], r["p50_ms"], r["p99_ms"], r["errors"]])
                results["servers"][label] = runs
                if kind not in ("mlflow", "fastapi") and not args.no_grpc:
                    results["grpc"][label] = grpc_figures(handle, held, folder, concs, args.seconds)
            finally:
                if kind in ("mlflow", "fastapi"):
                    _stop(handle)
                elif handle is not None:
                    handle.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table("serving, one raw row per request, wrk over HTTP/JSON (same machine, same run)",
                ["server", "concurrency", "req/s", "p50 ms", "p99 ms", "errors"], rows)
    if results["grpc"]:
        print_table("Triton over gRPC (Python closed loop, one client per thread)",
                    ["server", "concurrency", "req/s", "p50 ms", "p99 ms", "errors"],
                    [[k, r["concurrency"], r["throughput"], r["p50_ms"], r["p99_ms"], r["errors"]]
                     for k, runs in results["grpc"].items() for r in runs])
    top = max(concs)
    at_top = {k: next(r for r in v if r["concurrency"] == top) for k, v in results["servers"].items()}
    tri = {k: r for k, r in at_top.items() if k.startswith("triton")}
    base = {k: r for k, r in at_top.items() if not k.startswith("triton")}
    if tri and base:
        best_t = max(tri.items(), key=lambda kv: kv[1]["throughput"])
        best_b = max(base.items(), key=lambda kv: kv[1]["throughput"])
        ratio = best_t[1]["throughput"] / max(best_b[1]["throughput"], 1e-9)
        verdict = {"triton": best_t[0], "best_baseline": best_b[0], "throughput_ratio": ratio,
                   "triton_p99_ms": best_t[1]["p99_ms"], "baseline_p99_ms": best_b[1]["p99_ms"],
                   "goal_met": bool(ratio >= 3.0 and best_t[1]["p99_ms"] < best_b[1]["p99_ms"])}
        results["verdict"] = verdict
        print(f"concurrency {top}: {best_t[0]} {ratio:.2f}x the throughput of {best_b[0]}; p99 "
              f"{best_t[1]['p99_ms']:.2f} ms vs {best_b[1]['p99_ms']:.2f} ms; goal (>= 3x, lower p99) "
              f"{'met' if verdict['goal_met'] else 'NOT met'}")
    suite = "serve" if not args.skip_baselines else "serve-layouts" if len(layouts) > 1 else "serve-triton"
    write_results(suite, results)
    return 0
