"""The CUDA twin of the categorical hash under the Numba CUDA simulator (tiny grid, subprocess)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from kernels.hashing import hash_bytes, hash_bytes_cpu, hash_bytes_cuda, hash_bytes_reference, strings_to_buffer
    from kernels._cuda import cuda

    rng = np.random.default_rng(5)
    alphabet = [chr(c) for c in range(32, 127)] + list("éü日本🙂Ж")
    values = ["", "a", "\\x00", "🙂" * 9] + ["".join(rng.choice(alphabet, size=int(rng.integers(0, 20))))
                                            for _ in range(156)]
    data, offsets = strings_to_buffer(values)
    for seed in (0, 12345):
        ref = hash_bytes_reference(data, offsets, seed)
        cpu = hash_bytes_cpu(data, offsets, seed)
        gpu = hash_bytes_cuda(data, offsets, seed, blocks=2, threads=32)  # grid-stride: 64 threads, 160 values
        assert isinstance(gpu, np.ndarray) and gpu.dtype == np.uint32, (type(gpu), gpu.dtype)
        assert np.array_equal(gpu, ref), "CUDA twin differs from the NumPy reference"
        assert np.array_equal(gpu, cpu), "CUDA twin differs from the CPU twin"
    d = cuda().to_device(data)
    o = cuda().to_device(offsets[40:81])  # device arrays go to the CUDA twin; a slice not starting at 0
    out = hash_bytes(d, o, 7)
    assert np.array_equal(np.asarray(out), hash_bytes_reference(data, offsets, 7)[40:80])
    empty = hash_bytes_cuda(np.zeros(0, np.uint8), np.zeros(4, np.int64), 0, blocks=1, threads=32)
    assert np.array_equal(empty, hash_bytes_reference(np.zeros(0, np.uint8), np.zeros(4, np.int64), 0))
    print("ok")
    """
)


def test_cuda_twin_equals_cpu_twin_and_reference_under_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("ok")
