"""Choose the compute backend once, at the edge of a run.

The chosen :class:`Backend` travels with the run context; stages use ``backend.xp`` (NumPy or CuPy),
``backend.df`` (pandas or cuDF) and ``backend.estimators`` ("sklearn" or "cuml") and never ask which
device they are on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from engine.backend import compat
from engine.errors import BackendError


@dataclass(frozen=True)
class Backend:
    """The array / dataframe / estimator libraries a run uses."""

    name: str  # "cpu" or "gpu"
    xp: ModuleType
    df: ModuleType
    estimators: str  # "sklearn" or "cuml"
    requested: str = "auto"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_gpu(self) -> bool:
        return self.name == "gpu"

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """Move ``a`` to this backend's device."""
        return self.xp.asarray(a, dtype=dtype)

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requested": self.requested,
            "array": self.xp.__name__,
            "dataframe": self.df.__name__,
            "estimators": self.estimators,
            "notes": list(self.notes),
        }


def gpu_available() -> tuple[bool, str]:
    """(available, reason): NVML reports a device and CuPy imports. Creates no CUDA context."""
    n = compat.nvml_gpu_count()
    if n == 0:
        return False, "NVML reports no GPU (or the NVIDIA driver library is absent)"
    if compat.cupy() is None:
        return False, f"NVML reports {n} GPU(s) but CuPy does not import (install the 'gpu' extra)"
    return True, f"{n} GPU(s)"


def cpu_backend(requested: str = "cpu", notes: tuple[str, ...] = ()) -> Backend:
    import pandas

    return Backend("cpu", np, pandas, "sklearn", requested, notes)


def select_backend(choice: str = "auto") -> Backend:
    """Pick the backend for ``choice`` in {"auto", "cpu", "gpu"}.

    Raises
    ------
    BackendError
        ``choice="gpu"`` on a machine without a usable GPU.
    """
    choice = getattr(choice, "value", choice)
    if choice not in ("auto", "cpu", "gpu"):
        raise BackendError(f"backend.name: expected auto, cpu or gpu, got {choice!r}")
    if choice == "cpu":
        return cpu_backend("cpu")
    ok, why = gpu_available()
    if not ok:
        if choice == "gpu":
            raise BackendError(f"backend=gpu was requested but no GPU can be used: {why}. Use backend=cpu or backend=auto.")
        return cpu_backend("auto", (f"auto chose cpu: {why}",))
    cp = compat.cupy()
    cudf = compat.cudf()
    cuml = compat.cuml()
    notes = []
    if cudf is None:
        notes.append("cuDF not importable: frames stay pandas, numeric arrays move to CuPy")
        import pandas as df_mod
    else:
        df_mod = cudf
    if cuml is None:
        notes.append("cuML not importable: estimators without a Trident GPU implementation use scikit-learn")
    return Backend("gpu", cp, df_mod, "cuml" if cuml is not None else "sklearn", choice, tuple(notes))


def get_namespace(*arrays: Any) -> ModuleType:
    """NumPy or CuPy, from the arrays themselves (like scikit-learn's ``get_namespace``)."""
    for a in arrays:
        mod = type(a).__module__
        if mod.startswith("cupy"):
            return compat.cupy()
    return np


def to_numpy(a: Any) -> np.ndarray:
    """The only place that turns a device array into a host NumPy array."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    if hasattr(a, "to_numpy"):
        return a.to_numpy()
    return np.asarray(a)
