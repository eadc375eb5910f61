"""Launch sizes shared by the gradient-boosted-tree kernels.

CPU twins run with as many Numba threads as their work pays for: a parallel region costs a few
microseconds on an idle machine but milliseconds when the cores are shared (a thread waits for its
time slice at every barrier), so small calls (the deep nodes of a tree, small data sets) run on one
thread. CUDA twins size their grids from the work, with tiny grids under the simulator.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

__all__ = ["NS_PER_THREAD", "block_table", "cpu_threads", "cpu_timed", "gpu_timed", "launch_blocks"]

#: Estimated nanoseconds of work that justify one more CPU thread.
NS_PER_THREAD = 1_000_000


@contextlib.contextmanager
def cpu_threads(work_ns: float) -> Iterator[int]:
    """Run the enclosed Numba parallel calls on ``min(threads, work_ns / NS_PER_THREAD)`` threads
    (at least 1); yields that number and restores the previous setting on exit."""
    import numba

    have = numba.get_num_threads()
    want = int(max(1, min(have, work_ns // NS_PER_THREAD)))
    if want == have:
        yield have
        return
    numba.set_num_threads(want)
    try:
        yield want
    finally:
        numba.set_num_threads(have)


def launch_blocks(work: int, threads: int, cap: int = 65535) -> int:
    """Blocks for a grid-stride loop over ``work`` items: enough to cover it, at most ``cap`` (4 under
    the CUDA simulator, which runs one Python thread per CUDA thread)."""
    from kernels._cuda import simulator

    return max(1, min(-(-int(work) // int(threads)), 4 if simulator() else int(cap)))


def block_table(starts: np.ndarray, counts: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut each node's range ``starts[k] .. starts[k] + counts[k]`` into blocks of ``chunk`` positions:
    ``(node, start, end)`` per block, nodes in order."""
    nblk = (counts + chunk - 1) // chunk
    node = np.repeat(np.arange(len(counts), dtype=np.int64), nblk)
    first = np.repeat(np.cumsum(nblk) - nblk, nblk)
    j = np.arange(node.size, dtype=np.int64) - first
    start = starts[node] + j * chunk
    end = np.minimum(start + chunk, starts[node] + counts[node])
    return node, start, end


def gpu_timed(fn, repeat: int = 3):  # noqa: ANN001, ANN201
    """(best seconds over ``repeat`` synchronised calls after a warm-up, last value) for a CuPy call."""
    import time

    import cupy

    value = fn()
    cupy.cuda.Device().synchronize()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        cupy.cuda.Device().synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, value


def cpu_timed(fn):  # noqa: ANN001, ANN201
    """(seconds of one call after a warm-up call, value)."""
    import time

    fn()
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value
