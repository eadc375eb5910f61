"""Run CUDA twins under the Numba CUDA simulator, in a subprocess (the simulator must be switched on
before Numba is imported)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_cudasim(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` with ``NUMBA_ENABLE_CUDASIM=1``; fails the test with its output if it fails."""
    env = dict(os.environ)
    env["NUMBA_ENABLE_CUDASIM"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        pytest.fail(f"simulated CUDA run failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def cudasim():
    return run_cudasim
