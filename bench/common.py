"""Shared helpers for benchmark suites: timing, peak memory, tables, JSON results."""
from __future__ import annotations

import gc
import json
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass
class Measurement:
    seconds: float
    peak_bytes: int  # peak resident memory above the level before the call
    value: Any = None


class _PeakRSS:
    def __init__(self, interval: float = 0.002) -> None:
        self.proc = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> "_PeakRSS":
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self.t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def measure(fn: Callable[[], Any], repeat: int = 1) -> Measurement:
    """Best wall time over ``repeat`` calls and the peak RSS growth of the first call."""
    gc.collect()
    best = float("inf")
    peak = 0
    value = None
    for i in range(repeat):
        gc.collect()
        with _PeakRSS() as pr:
            t0 = time.perf_counter()
            value = fn()
            dt = time.perf_counter() - t0
        best = min(best, dt)
        if i == 0:
            peak = pr.peak - pr.base
    return Measurement(best, int(peak), value)


def profile_call(fn: Callable[[], Any], top: int = 12) -> dict[str, Any]:
    """Where one call of ``fn`` spends its host time (cProfile; ``fn`` waits for the device itself).

    Returns the call's seconds under the profiler, the ``top`` functions by own time (any code) and by
    cumulative time in this repository's code outside bench/ (``file:line name``, calls, seconds), and the raw
    ``pstats`` table as ``stats`` for callers that pick out functions of their own.
    """
    import cProfile
    import pstats

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (primitive calls, calls, own s, cumulative s, callers)
    repo = str(Path(__file__).resolve().parents[1])

    def label(key: tuple[str, int, str]) -> str:
        f, line, name = key
        return f"{f.replace(repo + '/', '')}:{line} {name}"

    own = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    ours = sorted(((k, v) for k, v in stats.items()
                   if k[0].startswith(repo) and "/.venv" not in k[0] and not k[0].startswith(f"{repo}/bench/")),
                  key=lambda kv: -kv[1][3])[:top]
    return {
        "seconds": wall,
        "top_own_time": [[label(k), int(v[1]), round(float(v[2]), 4)] for k, v in own],
        "top_repo_cumulative": [[label(k), int(v[1]), round(float(v[3]), 4)] for k, v in ours],
        "stats": stats,
    }


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> str:
    """Print a plain-text table (and return it) so it can be pasted into RESULTS.md."""
    cells = [[str(c) for c in columns]] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = [title, "| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in cells[1:]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "n/a"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.4g}"
    return str(v)


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": psutil.virtual_memory().total,
        "python": platform.python_version(),
    }


def write_results(suite: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<suite>.json`` (ignored by git) and return its path."""
    from engine.atomic import write_json

    payload = {"suite": suite, "machine": machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **payload}
    path = RESULTS_DIR / f"{suite}.json"
    write_json(path, json.loads(json.dumps(payload, default=str)))
    print(f"results: {path}")
    return path
