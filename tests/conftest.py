"""Shared fixtures: paths, the real credit data file, a clean working directory for runs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CREDIT_CSV = (REPO.parent / "shared" / "data" / "credit_data.csv").resolve()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def credit_csv() -> Path:
    if not CREDIT_CSV.is_file():
        pytest.skip(f"real credit data not found at {CREDIT_CSV}")
    return CREDIT_CSV


def run_trident(args: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m engine ARGS`` in a subprocess (the way a user runs ``trident``)."""
    e = dict(os.environ)
    e.setdefault("PYTHONUNBUFFERED", "1")
    e.pop("HYDRA_FULL_ERROR", None)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=e)


@pytest.fixture
def trident(tmp_path: Path):
    """Call ``trident(*args)`` to run the CLI in ``tmp_path``; returns the CompletedProcess."""

    def _run(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
        return run_trident(list(args), tmp_path, timeout=timeout, env=env)

    _run.cwd = tmp_path  # type: ignore[attr-defined]
    return _run
