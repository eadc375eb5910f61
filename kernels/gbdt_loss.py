"""Per-row gradients and hessians of the boosting losses, as float32.

Losses (of the raw score ``f``, float64, against the target ``y``):

- ``"squared_error"`` (code 0): ``l = (f - y)^2 / 2``, gradient ``f - y``, hessian 1.
- ``"log_loss"`` (code 1): ``p = 1 / (1 + exp(-f))``, ``y`` in {0, 1}; gradient ``p - y``, hessian
  ``p (1 - p)``.

The output ``gh`` is ``(rows, 2)`` float32: gradient and hessian side by side (the histogram kernels
read a row's pair at once).

Twins: :func:`gradients_reference` (NumPy), :func:`gradients_cpu` (``@njit(parallel=True)``) and
:func:`gradients_cuda` (``@cuda.jit``, one thread per row) fill the same ``gh``;
:func:`gradients` picks the twin from the array's namespace.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from numba import njit, prange

from kernels._cuda import launch

__all__ = ["LOSSES", "gradients", "gradients_cpu", "gradients_cuda", "gradients_reference"]

#: Loss name -> code passed to the kernels.
LOSSES = {"squared_error": 0, "log_loss": 1}


def _code(loss: str) -> int:
    try:
        return LOSSES[loss]
    except KeyError:
        raise ValueError(f"loss: expected one of {sorted(LOSSES)}, got {loss!r}") from None


def gradients_reference(loss: str, raw: np.ndarray, y: np.ndarray) -> np.ndarray:
    """NumPy reference: ``gh`` (rows, 2) float32."""
    raw = np.asarray(raw, np.float64)
    y = np.asarray(y, np.float64)
    if _code(loss) == 0:
        return np.stack([raw - y, np.ones(raw.shape)], axis=1).astype(np.float32)
    p = 1.0 / (1.0 + np.exp(-raw))
    return np.stack([p - y, p * (1.0 - p)], axis=1).astype(np.float32)


@njit(parallel=True, cache=True)
def _gradients_cpu(code, raw, y, gh):  # pragma: no cover - compiled
    for i in prange(raw.shape[0]):
        f = raw[i]
        if code == 0:
            gh[i, 0] = np.float32(f - y[i])
            gh[i, 1] = np.float32(1.0)
        else:
            p = 1.0 / (1.0 + math.exp(-f))
            gh[i, 0] = np.float32(p - y[i])
            gh[i, 1] = np.float32(p * (1.0 - p))


def gradients_cpu(loss: str, raw: np.ndarray, y: np.ndarray, gh: np.ndarray | None = None) -> np.ndarray:
    """CPU twin (``@njit(parallel=True)``); fills ``gh`` when given."""
    from kernels.gbdt_launch import cpu_threads

    gh = np.empty((raw.shape[0], 2), np.float32) if gh is None else gh
    with cpu_threads(5.0 * raw.shape[0]):
        _gradients_cpu(_code(loss), raw, y, gh)
    return gh


@functools.cache
def _cuda_kernel():
    from numba import float32

    from kernels._cuda import cuda as _cuda

    global cuda  # module global: the CUDA simulator swaps it for its fake module
    cuda = _cuda()

    @cuda.jit
    def kernel(code, raw, y, gh):  # pragma: no cover - compiled
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, raw.shape[0], stride):
            f = raw[i]
            if code == 0:
                gh[i, 0] = float32(f - y[i])
                gh[i, 1] = float32(1.0)
            else:
                p = 1.0 / (1.0 + math.exp(-f))
                gh[i, 0] = float32(p - y[i])
                gh[i, 1] = float32(p * (1.0 - p))

    return kernel


def gradients_cuda(loss: str, raw: Any, y: Any, gh: Any = None, blocks: int | None = None, threads: int | None = None) -> Any:
    """CUDA twin (``@cuda.jit``): grid-stride loop, one row per thread and step."""
    from engine.backend import get_namespace
    from kernels._cuda import grid_threads

    xp = get_namespace(raw)
    n = raw.shape[0]
    gh = xp.empty((n, 2), dtype=np.float32) if gh is None else gh
    nb, nt = grid_threads(blocks, threads)
    if n:
        launch(_cuda_kernel(), nb, nt, _code(loss), raw, y, gh)
    return gh


def gradients(loss: str, raw: Any, y: Any, gh: Any = None) -> Any:
    """Gradient and hessian pairs ``gh`` (rows, 2) float32 of ``loss`` at the raw scores ``raw``
    (float64); ``gh`` is filled in place when given.

    Examples
    --------
    >>> gradients("log_loss", np.zeros(2), np.array([0.0, 1.0])).tolist()
    [[0.5, 0.25], [-0.5, 0.25]]
    """
    from engine.backend import get_namespace

    if get_namespace(raw) is np:
        return gradients_cpu(loss, raw, y, gh)
    return gradients_cuda(loss, raw, y, gh)


def gpu_check(rows: int = 5_000_000) -> dict:
    """For ``bench/gpu_check.py``: the CUDA twin against the CPU twin for both losses (CuPy data)."""
    import cupy

    from kernels.gbdt_launch import cpu_timed, gpu_timed

    rng = np.random.default_rng(3)
    raw = rng.normal(size=rows)
    y = (rng.random(rows) < 0.3).astype(np.float32)
    d_raw, d_y = cupy.asarray(raw), cupy.asarray(y)
    ok, detail, out = True, [], {}
    for loss in LOSSES:
        t_cpu, cpu = cpu_timed(lambda: gradients_cpu(loss, raw, y))
        t_gpu, gpu = gpu_timed(lambda: gradients_cuda(loss, d_raw, d_y))
        good = bool(np.allclose(cupy.asnumpy(gpu), cpu, rtol=1e-6, atol=1e-7))
        ok &= good
        out[f"{loss}_gpu_s"], out[f"{loss}_cpu_s"] = t_gpu, t_cpu
        detail.append(f"{loss}: equal {good}, gpu {t_gpu*1e3:.2f} ms, cpu {t_cpu*1e3:.1f} ms")
    return {"ok": ok, "detail": f"{rows:,} rows: " + "; ".join(detail), **out}
