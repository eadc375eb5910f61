"""The load generator: statistics, bounds and error accounting, on plain callables (no server)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engine.serve.loadtest import closed_loop, open_loop, percentiles


def test_percentiles_match_numpy_in_milliseconds():
    rng = np.random.default_rng(0)
    lat = rng.exponential(0.002, size=1000)
    p = percentiles(lat)
    np.testing.assert_allclose([p["p50_ms"], p["p90_ms"], p["p99_ms"]], np.percentile(lat, [50, 90, 99]) * 1000)
    assert p["max_ms"] == pytest.approx(lat.max() * 1000)
    assert p["mean_ms"] == pytest.approx(lat.mean() * 1000)


def test_percentiles_of_nothing_are_nan():
    assert np.isnan(percentiles(np.array([]))["p99_ms"])


def test_closed_loop_runs_each_worker_on_its_own_callable():
    owners: list[int] = []
    lock = threading.Lock()

    def make():
        def call():
            with lock:
                owners.append(threading.get_ident())
        return call

    r = closed_loop(make, concurrency=4, duration_s=0.2, warmup=1)
    assert r.errors == 0 and r.requests > 0
    assert len(set(owners)) == 4
    assert r.requests == len(owners) - 4  # warm-up requests are not counted


def test_closed_loop_stops_at_the_request_cap():
    r = closed_loop(lambda: (lambda: None), concurrency=3, duration_s=30.0, max_requests=50)
    assert r.requests == 50
    assert r.seconds < 5.0


def test_closed_loop_measures_latency():
    r = closed_loop(lambda: (lambda: time.sleep(0.01)), concurrency=2, duration_s=0.3)
    assert 9.0 <= r.p50_ms <= 60.0
    assert r.throughput == pytest.approx(r.requests / r.seconds, rel=0.01)


def test_errors_are_counted_with_their_messages():
    count = [0]
    lock = threading.Lock()

    def call():
        with lock:
            count[0] += 1
            n = count[0]
        if n % 2 == 0:
            raise RuntimeError("refused")

    r = closed_loop(lambda: call, concurrency=1, duration_s=5.0, max_requests=10)
    assert r.requests == 10 and r.errors == 5
    assert r.error_rate == 0.5
    assert r.error_samples == ["refused"]


def test_open_loop_keeps_the_rate():
    r = open_loop(lambda: (lambda: None), rate=200.0, duration_s=0.5, workers=4)
    assert r.requests == 100 and r.errors == 0
    assert r.seconds == pytest.approx(0.5, abs=0.3)


def test_open_loop_counts_queueing_time():
    # one worker, each call 20 ms, 100 requests/s: requests queue up, latency grows past the service time
    r = open_loop(lambda: (lambda: time.sleep(0.02)), rate=100.0, duration_s=0.3, workers=1)
    assert r.requests == 30
    assert r.max_ms > 100.0
