"""One import point for Numba CUDA, plus the launch geometry and device I/O the CUDA twins share.

Importing this module imports neither Numba CUDA nor CuPy; :func:`cuda` does, on first use.

NumPy 2.5 removed ``np.row_stack``, which Numba CUDA's array overloads still reference when a kernel
is compiled; :func:`cuda` restores the alias (to ``np.vstack``, which it always was) before Numba CUDA
is imported, so every CUDA twin compiles on any NumPy the project supports.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from types import ModuleType
from typing import Any

import numpy as np

#: Threads per block of every CUDA twin (a multiple of the warp size).
THREADS = 256
#: Resident blocks per multiprocessor the launch aims for (8 x 256 = 2048 threads, the H100 maximum).
BLOCKS_PER_SM = 8
#: Static shared memory a kernel may use per block (bytes); 48 KiB is the portable limit.
SHARED_BYTES = 44 * 1024


def numpy_compat() -> None:
    """Restore the NumPy aliases Numba CUDA still references (``np.row_stack``)."""
    if not hasattr(np, "row_stack"):
        np.row_stack = np.vstack  # type: ignore[attr-defined]


@functools.cache
def cuda() -> ModuleType:
    """The ``numba.cuda`` module, imported after :func:`numpy_compat`."""
    numpy_compat()
    from numba import cuda as numba_cuda

    return numba_cuda


def simulator() -> bool:
    """True when Numba runs CUDA kernels on the CPU (``NUMBA_ENABLE_CUDASIM=1``)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


@functools.cache
def multiprocessors() -> int:
    """Number of streaming multiprocessors of the current device (1 under the simulator)."""
    if simulator():
        return 1
    dev = cuda().get_current_device()
    return int(getattr(dev, "MULTIPROCESSOR_COUNT", 1))


def grid_threads(blocks: int | None = None, threads: int | None = None) -> tuple[int, int]:
    """Launch geometry: ``(blocks, threads)``; by default enough blocks to fill every multiprocessor.

    Under the simulator the default is 4 blocks x 32 threads: the simulator runs one Python thread per
    CUDA thread.
    """
    if threads is None:
        threads = 32 if simulator() else THREADS
    if blocks is None:
        blocks = 4 if simulator() else multiprocessors() * BLOCKS_PER_SM
    if blocks < 1 or threads < 1:
        raise ValueError(f"blocks and threads must be >= 1, got blocks={blocks}, threads={threads}")
    return int(blocks), int(threads)


def is_cupy(a: Any) -> bool:
    return type(a).__module__.startswith("cupy")


class DeviceIO:
    """Moves a CUDA twin's inputs to the device and its outputs back to the caller's namespace.

    CuPy inputs stay on the device and outputs are CuPy arrays. NumPy inputs are copied to the device
    once and outputs come back as NumPy arrays (this is also how the simulator runs the twins).
    """

    def __init__(self, like: Any) -> None:
        self.on_cupy = is_cupy(like)
        if self.on_cupy:
            import cupy

            self.xp = cupy
        else:
            self.xp = np

    def to_device(self, a: Any) -> Any:
        if self.on_cupy:
            return self.xp.asarray(a)
        if type(a).__module__.startswith("numba"):
            return a
        return cuda().to_device(np.ascontiguousarray(a))

    def full(self, shape: tuple[int, ...], value: Any, dtype: Any) -> Any:
        if self.on_cupy:
            return self.xp.full(shape, value, dtype=dtype)
        return cuda().to_device(np.full(shape, value, dtype=dtype))

    def result(self, d: Any) -> Any:
        """A device output as an array of the caller's namespace."""
        if self.on_cupy:
            return d
        return d.copy_to_host()


# ------------------------------------------------------------------------------------ fast launch
#: Set ``TRIDENT_FAST_LAUNCH=0`` to launch every kernel through Numba's dispatcher.
FAST_LAUNCH_ENV = "TRIDENT_FAST_LAUNCH"
#: (dispatcher, argument key) -> prepared launch, or None where the fast path does not apply.
_PREPARED: dict[tuple[Any, tuple[Any, ...]], Any] = {}
_CONFIGS: dict[tuple[Any, Any], Any] = {}


def _arg_key(a: Any) -> Any:
    """What selects a compiled overload: an array's dtype, dimensions and layout; a scalar's type."""
    t = type(a)
    if t.__module__.startswith("cupy"):
        flags = a.flags
        return (t, a.dtype.char, a.ndim, flags.c_contiguous, flags.f_contiguous)
    return t


def _array_packer(a: Any, out: list[Any]) -> None:
    # Numba CUDA's kernel ABI for an array: meminfo, parent, nitems, itemsize, data, shape..., strides...
    out += (0, 0, a.size, a.itemsize, a.data.ptr, *a.shape, *a.strides)


def _scalar_packer(ctor: Any) -> Any:
    def pack(v: Any, out: list[Any]) -> None:
        out.append(ctor(v))

    return pack


def _bool_packer(v: Any, out: list[Any]) -> None:
    out.append(bool(v))


def _prepare_fast(kernel: Any, args: tuple[Any, ...]) -> Any:
    """(packers, CUDA kernel, launch) for a compiled overload whose arguments are CuPy arrays and
    plain scalars, or None where that does not hold (the dispatcher then launches as usual)."""
    import ctypes

    from numba.cuda import types as nbtypes  # the types Numba CUDA's dispatcher checks against

    if not all(is_cupy(a) or isinstance(a, (int, float, bool, np.integer, np.floating, np.bool_)) for a in args):
        return None
    argtypes = tuple(kernel.typeof_pyval(a) for a in args)
    compiled = kernel.overloads.get(argtypes)
    if compiled is None or getattr(compiled, "debug", False) or getattr(compiled, "cooperative", False):
        return None
    if getattr(kernel, "targetoptions", {}).get("extensions"):
        return None
    packers = []
    for t in compiled.argument_types:
        if isinstance(t, nbtypes.Array):
            packers.append(_array_packer)
        elif isinstance(t, nbtypes.Boolean):
            packers.append(_bool_packer)
        elif isinstance(t, nbtypes.Integer):
            packers.append(_scalar_packer(getattr(ctypes, f"c_{t}")))
        elif t == nbtypes.float64:
            packers.append(_scalar_packer(ctypes.c_double))
        elif t == nbtypes.float32:
            packers.append(_scalar_packer(ctypes.c_float))
        else:
            return None
    from cuda.core import launch as core_launch
    from numba.cuda.cudadrv import driver

    return packers, compiled._codelibrary.get_cufunc().kernel, core_launch, driver._to_core_stream(0)


def _dims(d: Any) -> Any:
    return tuple(int(v) for v in d) if isinstance(d, (tuple, list)) else int(d)


def _config(griddim: Any, blockdim: Any) -> Any:
    key = (_dims(griddim), _dims(blockdim))
    config = _CONFIGS.get(key)
    if config is None:
        from cuda.core import LaunchConfig

        if len(_CONFIGS) > 4096:
            _CONFIGS.clear()
        config = _CONFIGS[key] = LaunchConfig(grid=key[0], block=key[1], shmem_size=0)
    return config


def _packed(prepared: Any, griddim: Any, blockdim: Any, args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """(``cuda.core.launch``, its arguments) for one launch of a prepared overload."""
    packers, cukernel, core_launch, stream = prepared
    params: list[Any] = []
    for pack, a in zip(packers, args):
        pack(a, params)
    return core_launch, (stream, _config(griddim, blockdim), cukernel, *params)


def _launch_prepared(prepared: Any, griddim: Any, blockdim: Any, args: tuple[Any, ...]) -> None:
    core_launch, params = _packed(prepared, griddim, blockdim, args)
    core_launch(*params)


#: Whether the direct launch gave the right result on this process's GPU (None: not probed yet).
_FAST_OK: bool | None = None


def _probe_kernel(a2, b1, c, f2, flag, k, x, out):  # pragma: no cover - compiled
    out[0] = a2[1, 2] + a2.shape[0] * 100.0 + a2.shape[1] * 10.0
    out[1] = b1[3] + b1.shape[0] * 10.0
    out[2] = c[2] + c.shape[0] * 100.0
    out[3] = f2[2, 1] + f2[0, 3] * 10.0 + f2.strides[1]
    out[4] = flag[0]
    out[5] = k + x
    out[6] = a2.size + c.size + c.strides[0]


def _probe() -> bool:
    """Launch a probe kernel through Numba's dispatcher (compiling it), then directly, on arrays of
    several dtypes, dimensions and layouts (one strided, one Fortran-ordered) and each scalar kind;
    True when the direct launch wrote what the dispatcher's launch wrote."""
    import cupy

    kernel = cuda().jit(_probe_kernel)
    a2 = cupy.arange(12, dtype=cupy.float64).reshape(3, 4)
    b1 = cupy.arange(5, dtype=cupy.int32) + 1
    c = cupy.arange(20, dtype=cupy.float32)[::4]
    f2 = cupy.asfortranarray(a2)
    flag = cupy.ones(1, dtype=cupy.uint8)
    out = cupy.zeros(8, dtype=cupy.float64)
    args = (a2, b1, c, f2, flag, 7, 0.5, out)
    kernel[1, 1](*args)
    want = cupy.asnumpy(out)
    prepared = _prepare_fast(kernel, args)
    if prepared is None or not np.any(want):
        return False
    out.fill(0)
    _launch_prepared(prepared, 1, 1, args)
    return bool(np.array_equal(cupy.asnumpy(out), want))


def fast_launch_works() -> bool:
    """Whether :func:`launch` takes its direct path in this process: checked once, on first use, by a
    probe kernel (a mismatch or an error turns the direct path off, with a warning)."""
    global _FAST_OK
    if simulator() or os.environ.get(FAST_LAUNCH_ENV, "1") == "0":
        return False
    if _FAST_OK is None and importlib.util.find_spec("cupy") is None:
        _FAST_OK = False  # no CuPy arrays to launch with
    if _FAST_OK is None:
        _FAST_OK = False  # while probing, launches take the dispatcher's path
        try:
            ok = _probe()
            why = "it wrote a wrong result"
        except Exception as exc:  # an internal API moved
            ok, why = False, f"{type(exc).__name__}: {exc}"
        _FAST_OK = ok
        if not ok:
            import warnings

            warnings.warn(f"kernels._cuda.launch: the direct kernel launch failed its check ({why}); "
                          "launching through Numba's dispatcher instead (slower)", RuntimeWarning, stacklevel=3)
    return _FAST_OK


def launch(kernel: Any, griddim: Any, blockdim: Any, *args: Any) -> None:
    """``kernel[griddim, blockdim](*args)`` on the default stream, at the cost of one driver call.

    Numba's dispatcher converts every CuPy argument through DLPack and the CUDA array interface on
    each launch (300 us for 8 arrays with numba-cuda 0.30 on an H200, against 14 us for a CuPy
    elementwise launch). The first launch of an overload goes through the dispatcher (which compiles
    it); later ones with CuPy arrays and scalars of the same types pass the arrays' pointers, shapes
    and strides straight to ``cuda.core.launch`` in Numba's kernel ABI. The direct path is checked
    once per process against a probe kernel (:func:`fast_launch_works`). Anything else (NumPy or
    Numba arrays, the simulator, a debug or cooperative kernel, ``TRIDENT_FAST_LAUNCH=0``, a failed
    check) launches through the dispatcher.
    """
    if not fast_launch_works():
        kernel[griddim, blockdim](*args)
        return
    key = (kernel, tuple(_arg_key(a) for a in args))
    prepared = _PREPARED.get(key, False)
    if prepared is False:
        kernel[griddim, blockdim](*args)  # compiles the overload
        try:
            prepared = _prepare_fast(kernel, args)
        except Exception:  # an internal API moved: keep the dispatcher's path
            prepared = None
        _PREPARED[key] = prepared
    elif prepared is None:
        kernel[griddim, blockdim](*args)
    else:
        try:
            _launch_prepared(prepared, griddim, blockdim, args)
        except Exception:  # refused before anything ran: this overload keeps the dispatcher's path
            _PREPARED[key] = None
            kernel[griddim, blockdim](*args)


def bind(kernel: Any, griddim: Any, blockdim: Any, *args: Any) -> Any:
    """A zero-argument call that launches ``kernel`` again with exactly these arguments (pointers,
    shapes, strides and scalars packed once), for launch sequences that repeat; or None where
    :func:`launch`'s direct path does not apply (the overload not compiled yet, or not CuPy arrays and
    plain scalars). The caller keeps the arrays alive while the call may run."""
    if not fast_launch_works():
        return None
    key = (kernel, tuple(_arg_key(a) for a in args))
    prepared = _PREPARED.get(key)
    if not prepared:
        return None
    core_launch, params = _packed(prepared, griddim, blockdim, args)
    return lambda: core_launch(*params)


def upload(xp: Any, *arrays: Any) -> tuple[Any, ...]:
    """Host arrays as arrays of ``xp`` (CuPy) in one host-to-device copy: each small copy from
    pageable memory costs a driver call and waits for the stream; NumPy (``xp is np``) returns them
    as they are."""
    host = [np.ascontiguousarray(a) for a in arrays]
    if xp is np:
        return tuple(host)
    offsets, total = [], 0
    for a in host:
        offsets.append(total)
        total += -(-a.nbytes // 8) * 8  # 8-byte aligned views
    buf = np.empty(max(total, 8), np.uint8)
    for a, o in zip(host, offsets):
        buf[o : o + a.nbytes] = a.reshape(-1).view(np.uint8)
    dev = xp.asarray(buf)
    return tuple(dev[o : o + a.nbytes].view(a.dtype).reshape(a.shape) for a, o in zip(host, offsets))
