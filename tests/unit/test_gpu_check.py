"""bench/gpu_check.py on a machine without a GPU: a clear message and exit status 0."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.backend import gpu_available

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(gpu_available()[0], reason="a GPU is present: bench/gpu_check.py runs the full check there")
def test_gpu_check_says_no_gpu_and_exits_zero(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no GPU" in proc.stdout
    assert json.loads((tmp_path / "gpu_check.json").read_text())["gpu"] is False
