"""Backend selection: NumPy/pandas/scikit-learn or CuPy/cuDF/cuML, decided once per run."""
from engine.backend.select import Backend, cpu_backend, get_namespace, gpu_available, select_backend, to_numpy

__all__ = ["Backend", "cpu_backend", "get_namespace", "gpu_available", "select_backend", "to_numpy"]
