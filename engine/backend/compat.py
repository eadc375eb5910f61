"""Optional GPU libraries, imported once and lazily. Each getter returns the module or ``None``.

Importing CuPy does not create a CUDA context; nothing here does. GPUs are counted through NVML.
"""
from __future__ import annotations

import functools
import importlib
from types import ModuleType


@functools.cache
def _try_import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except Exception:  # ImportError, or a CUDA library that fails to load
        return None


def cupy() -> ModuleType | None:
    return _try_import("cupy")


def cudf() -> ModuleType | None:
    return _try_import("cudf")


def cuml() -> ModuleType | None:
    return _try_import("cuml")


def nvml_gpu_count() -> int:
    """Number of GPUs NVML reports (0 when NVML or its library is absent)."""
    try:
        import pynvml
    except Exception:
        return 0
    try:
        pynvml.nvmlInit()
    except Exception:
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    except Exception:
        return 0
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
