"""Where a run's code and environment came from: git commit, dirty flag, code hash, package versions."""
from __future__ import annotations

import hashlib
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]

PACKAGES = (
    "trident", "numpy", "pandas", "pyarrow", "scipy", "scikit-learn", "numba", "numba-cuda", "dask",
    "distributed", "hydra-core", "omegaconf", "mlflow", "onnx", "onnxruntime", "skl2onnx", "tritonclient",
    "cupy-cuda12x", "cudf-cu12", "cuml-cu12", "dask-cuda", "nvidia-ml-py", "psutil", "rich",
)


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _git(*args: str) -> str | None:
    try:
        res = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def git_state() -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    dirty = None
    if commit is not None:
        porcelain = _git("status", "--porcelain", "--untracked-files=no", "--", "engine", "kernels", "conf")
        dirty = bool(porcelain)
    return {"commit": commit, "dirty": dirty}


def code_sha256() -> str:
    """SHA-256 over the sources of engine/, kernels/ and conf/ (stable order), for runs outside git."""
    h = hashlib.sha256()
    for sub in ("engine", "kernels", "conf"):
        base = PROJECT_ROOT / sub
        if not base.exists():
            continue
        for p in sorted(base.rglob("*")):
            if p.is_file() and p.suffix in (".py", ".yaml", ".html", ".tmpl") and "__pycache__" not in p.parts:
                h.update(str(p.relative_to(PROJECT_ROOT)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()
