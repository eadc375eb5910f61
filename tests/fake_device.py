"""A stand-in for CuPy for tests on machines without a GPU.

NumPy underneath, but its arrays refuse to be mixed with host (NumPy) arrays, as CuPy's do, so code that
forgets a host-to-device move fails here as it would on a GPU.
"""
from __future__ import annotations

import numpy as np


class DeviceArray(np.ndarray):
    """An array "on the device": mixing it with a host (NumPy) array is an error, as with CuPy."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kw):
        _no_host(inputs + (out or ()))
        args = [np.asarray(x) if isinstance(x, DeviceArray) else x for x in inputs]
        if out is not None:
            kw["out"] = tuple(np.asarray(o) for o in out)
        res = getattr(ufunc, method)(*args, **kw)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return res.view(DeviceArray) if isinstance(res, np.ndarray) else res

    def __getitem__(self, key):
        _no_host(key if isinstance(key, tuple) else (key,))
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        _no_host((key if isinstance(key, tuple) else (key,)) + (value,))
        super().__setitem__(key, value)


def _no_host(items):
    for x in items:
        if isinstance(x, np.ndarray) and not isinstance(x, DeviceArray) and x.ndim > 0:
            raise TypeError("a host (NumPy) array was mixed with a device array")


class FakeDevice:
    """The part of CuPy's namespace the feature runtime uses, over :class:`DeviceArray`."""

    __name__ = "fake_device"
    float32, float64, int64, nan = np.float32, np.float64, np.int64, np.nan

    @staticmethod
    def asarray(a, dtype=None):
        return np.array(a, dtype=dtype, order="K").view(DeviceArray)

    def __getattr__(self, name):
        fn = getattr(np, name)

        def call(*args, **kw):
            _no_host(args + tuple(kw.values()))
            res = fn(*[np.asarray(a) if isinstance(a, DeviceArray) else a for a in args],
                     **{k: np.asarray(v) if isinstance(v, DeviceArray) else v for k, v in kw.items()})
            return res.view(DeviceArray) if isinstance(res, np.ndarray) else res

        return call
