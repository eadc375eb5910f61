"""Load tests: a closed loop (N workers, each sending its next request when the last one answered) and an
open loop (requests started at a constant rate whatever the answers; latency counted from the
scheduled start, so a slow server cannot hide its queueing). Both are bounded in requests and time.

A worker is a zero-argument callable doing one request (raising on failure), built by ``make_worker()``
once per thread, so that each thread owns its connection.

>>> import time
>>> r = closed_loop(lambda: (lambda: time.sleep(0.001)), concurrency=2, duration_s=0.1)
>>> r.requests > 0 and r.errors == 0
True
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

Worker = Callable[[], Any]


@dataclass
class LoadResult:
    """Latency (ms) percentiles, throughput and errors of one load run."""

    mode: str
    concurrency: int
    rate: float | None
    requests: int
    errors: int
    seconds: float
    throughput: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    error_samples: list[str] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "error_rate": self.error_rate}


def percentiles(latencies_s: np.ndarray) -> dict[str, float]:
    """p50 / p90 / p99 / max / mean in milliseconds (NaN when empty)."""
    a = np.asarray(latencies_s, dtype=np.float64) * 1000.0
    if a.size == 0:
        return {k: float("nan") for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms")}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "max_ms": float(a.max()),
            "mean_ms": float(a.mean())}


def _summarise(mode: str, concurrency: int, rate: float | None, lat: list[float], errors: list[str],
               seconds: float) -> LoadResult:
    n = len(lat) + len(errors)
    samples = sorted(set(errors))[:5]
    return LoadResult(mode=mode, concurrency=concurrency, rate=rate, requests=n, errors=len(errors),
                      seconds=seconds, throughput=(len(lat) / seconds) if seconds > 0 else 0.0,
                      error_samples=samples, **percentiles(np.asarray(lat)))


def _message(exc: BaseException) -> str:
    msg = getattr(exc, "message", None)
    text = msg() if callable(msg) else (msg or str(exc) or type(exc).__name__)
    return " ".join(str(text).split())[:300]


def closed_loop(make_worker: Callable[[], Worker], concurrency: int, duration_s: float,
                max_requests: int = 1_000_000, warmup: int = 0) -> LoadResult:
    """``concurrency`` threads each send requests back to back for ``duration_s`` seconds (or until
    ``max_requests`` in all); each thread first sends ``warmup`` requests that are not counted."""
    concurrency = max(1, int(concurrency))
    workers = [make_worker() for _ in range(concurrency)]
    lat: list[list[float]] = [[] for _ in range(concurrency)]
    errs: list[list[str]] = [[] for _ in range(concurrency)]
    budget = [int(max_requests)]
    lock = threading.Lock()
    start_barrier = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def take() -> bool:
        with lock:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    def run(i: int) -> None:
        call = workers[i]
        for _ in range(int(warmup)):
            try:
                call()
            except Exception:  # noqa: BLE001 - warm-up failures show up in the measured part
                pass
        start_barrier.wait()
        while time.perf_counter() < stop_at[0] and take():
            t0 = time.perf_counter()
            try:
                call()
                lat[i].append(time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001
                errs[i].append(_message(exc))

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    stop_at[0] = float("inf")
    start_barrier.wait()
    t_start = time.perf_counter()
    stop_at[0] = t_start + float(duration_s)
    for t in threads:
        t.join(timeout=float(duration_s) + 60.0)
    seconds = time.perf_counter() - t_start
    return _summarise("closed", concurrency, None, [x for part in lat for x in part],
                      [e for part in errs for e in part], seconds)


def open_loop(make_worker: Callable[[], Worker], rate: float, duration_s: float, workers: int = 16,
              max_requests: int = 1_000_000) -> LoadResult:
    """Start requests at ``rate`` per second for ``duration_s`` seconds on a pool of ``workers`` threads.

    A request's latency runs from its scheduled start to its answer; requests still queued when the
    pool cannot keep up count with their waiting time (no coordinated omission).
    """
    rate = float(rate)
    n = int(min(max_requests, max(1, round(rate * float(duration_s)))))
    q: queue.Queue[float | None] = queue.Queue()
    lat: list[float] = []
    errs: list[str] = []
    lock = threading.Lock()
    pool = [make_worker() for _ in range(max(1, int(workers)))]

    def run(call: Worker) -> None:
        while True:
            due = q.get()
            if due is None:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                call()
                with lock:
                    lat.append(time.perf_counter() - due)
            except Exception as exc:  # noqa: BLE001
                with lock:
                    errs.append(_message(exc))

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in pool]
    for t in threads:
        t.start()
    t_start = time.perf_counter() + 0.01
    for i in range(n):  # the schedule is fixed up front: the i-th request is due at start + i / rate
        q.put(t_start + i / rate)
    for _ in threads:
        q.put(None)
    for t in threads:
        t.join(timeout=float(duration_s) + 60.0)
    seconds = max(time.perf_counter() - t_start, 1e-9)
    return _summarise("open", len(pool), rate, lat, errs, seconds)


def grpc_worker_factory(url: str, model: str, version: int | None, inputs_for: Callable[[int], list[Any]],
                        timeout_s: float = 5.0, payloads: int = 16) -> Callable[[], Worker]:
    """``make_worker`` for Triton over gRPC: each worker owns an ``InferenceServerClient`` and cycles
    through ``payloads`` prebuilt request bodies (``inputs_for(i)`` builds the i-th)."""
    import tritonclient.grpc as grpcclient

    counter = [0]
    lock = threading.Lock()
    v = "" if version is None else str(int(version))

    def make() -> Worker:
        with lock:
            base = counter[0]
            counter[0] += 1
        client = grpcclient.InferenceServerClient(url)
        bodies = [inputs_for(base * payloads + j) for j in range(payloads)]
        state = {"i": 0}

        def call() -> Any:
            state["i"] = (state["i"] + 1) % len(bodies)
            return client.infer(model, bodies[state["i"]], model_version=v, client_timeout=timeout_s)

        return call

    return make
