"""Backend selection happens once; forcing a GPU without one is a clear error."""
import numpy as np
import pytest

from engine.backend import get_namespace, gpu_available, select_backend, to_numpy
from engine.errors import BackendError


def test_cpu_backend_uses_numpy_pandas_sklearn():
    b = select_backend("cpu")
    assert b.xp is np and b.df.__name__ == "pandas" and b.estimators == "sklearn"
    assert b.record()["name"] == "cpu"


@pytest.mark.skipif(gpu_available()[0], reason="machine has a GPU")
def test_auto_without_gpu_falls_back_to_cpu_and_says_why():
    b = select_backend("auto")
    assert b.name == "cpu"
    assert b.notes and "cpu" in b.notes[0]


@pytest.mark.skipif(gpu_available()[0], reason="machine has a GPU")
def test_forcing_gpu_without_one_names_the_problem():
    with pytest.raises(BackendError, match="backend=gpu"):
        select_backend("gpu")


def test_namespace_and_to_numpy_for_host_arrays():
    a = np.arange(4.0)
    assert get_namespace(a) is np
    assert to_numpy(a) is a or np.array_equal(to_numpy(a), a)


def test_hardware_record_has_cpu_and_ram():
    from engine.backend.hardware import describe

    d = describe()
    assert d["cpu_cores_logical"] >= 1 and d["ram_bytes"] > 0 and isinstance(d["gpus"], list)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available()[0], reason="needs a CUDA GPU (NVML + CuPy)")
def test_auto_picks_gpu_when_present():
    assert select_backend("auto").name == "gpu"
