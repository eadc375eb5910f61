"""The serving environment: a NumPy-1.26 Python venv holding the Triton server and the models' runtime.

Triton's python-backend stub (2.51) bundles an old pybind11 that misreads NumPy 2 arrays without any
error, so the served models run in their own venv (``EXECUTION_ENV_PATH`` in each model's config)
with the exact pins of ``requirements-triton.txt``. The same venv carries the Triton server from the
``nvidia-pytriton`` wheel (installed ``--no-deps``), used when no ``tritonserver`` is on ``PATH``.

``python -m engine.serve.tritonenv`` creates or updates it (idempotent: a stamp file holds the hash of
the requirements); :func:`locate_server` finds the server binary and builds its environment.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import TridentError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).with_name("requirements-triton.txt")
DEFAULT_ENV = ".venv-triton"
STAMP = ".trident-env.json"
#: Python versions the pins support (numpy 1.26.4 wheels) and that the wheel ships a stub for.
PYTHONS = ("3.11", "3.12")
NO_DEPS_MARK = "# no-deps:"
#: Bumped when what ensure_env builds changes (the stamp's hash covers it and the requirements).
ENV_FORMAT = 2


class ServingEnvError(TridentError):
    """The serving environment cannot be created or the Triton server cannot be found."""


@dataclass(frozen=True)
class TritonInstall:
    """Where the Triton server is and how to start it.

    Attributes
    ----------
    executable : Path
        The ``tritonserver`` binary.
    backend_dir : Path or None
        Folder holding ``python/`` (backend + stub) to pass as ``--backend-directory``; None means
        the server's own default (a production container).
    env : dict
        Extra environment variables for the server process (``LD_LIBRARY_PATH``).
    source : str
        ``"path"`` (a ``tritonserver`` found on PATH) or ``"wheel"`` (the nvidia-pytriton wheel).
    """

    executable: Path
    backend_dir: Path | None
    env: dict[str, str] = field(default_factory=dict)
    source: str = "wheel"


def resolve_env_path(path: str | os.PathLike | None = None) -> Path:
    """The absolute venv path: ``path``, else ``$TRIDENT_TRITON_ENV``, else ``.venv-triton``.

    Relative paths are taken from the project root (where the Makefile runs), not the working folder,
    so that every command finds the same environment.
    """
    raw = path if path not in (None, "") else os.environ.get("TRIDENT_TRITON_ENV") or DEFAULT_ENV
    p = Path(str(raw)).expanduser()
    return (p if p.is_absolute() else PROJECT_ROOT / p).absolute()


def read_requirements(path: Path = REQUIREMENTS) -> tuple[list[str], list[str]]:
    """``(pinned requirements, requirements to install with --no-deps)`` from the requirements file."""
    deps: list[str] = []
    no_deps: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith(NO_DEPS_MARK):
            no_deps.append(line[len(NO_DEPS_MARK):].strip())
        elif line and not line.startswith("#"):
            deps.append(line)
    return deps, no_deps


def requirements_hash(path: Path = REQUIREMENTS) -> str:
    return hashlib.sha256(path.read_bytes() + f"\nformat {ENV_FORMAT}".encode()).hexdigest()


def _env_python(env: Path) -> Path:
    return env / "bin" / "python"


def _site_packages(env: Path) -> Path:
    found = sorted((env / "lib").glob("python3.*/site-packages"))
    if not found:
        raise ServingEnvError(f"{env}: no lib/python3.*/site-packages (not a Python venv); "
                              f"run `python -m engine.serve.tritonenv` to recreate it")
    return found[-1]


def _python_version(env: Path) -> str:
    return _site_packages(env).parent.name.replace("python", "")


def env_ready(path: str | os.PathLike | None = None) -> bool:
    """True when the venv exists and its stamp matches the current requirements."""
    env = resolve_env_path(path)
    try:
        stamp = json.loads((env / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stamp.get("requirements_sha256") == requirements_hash() and _env_python(env).exists()


def _find_python() -> str:
    """The project's own interpreter when it is Python 3.11 or 3.12, else one of those on PATH."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" in PYTHONS:
        return getattr(sys, "_base_executable", None) or sys.executable
    for version in PYTHONS:
        exe = shutil.which(f"python{version}")
        if exe:
            return exe
    raise ServingEnvError(f"the serving environment needs Python {' or '.join(PYTHONS)} "
                          f"(python3.11 on PATH); none was found")


def _find_uv() -> str | None:
    local = PROJECT_ROOT / ".tools" / "bin" / "uv"
    if local.exists():
        return str(local)
    return shutil.which("uv")


def _run(cmd: list[str], quiet: bool) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServingEnvError(f"serving environment: `{' '.join(cmd[:3])} ...` failed: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ServingEnvError(f"serving environment: `{' '.join(cmd)}` failed: {' | '.join(tail)}")
    if not quiet and proc.stdout.strip():
        print(proc.stdout.strip().splitlines()[-1], file=sys.stderr)


@contextlib.contextmanager
def _lock(env: Path) -> Iterator[None]:
    import tempfile

    env.parent.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(env).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"trident-env-{key}.lock", "w") as fh:  # outside the project tree
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_env(path: str | os.PathLike | None = DEFAULT_ENV, python: str | None = None,
               quiet: bool = True) -> Path:
    """Create (or update) the serving venv and return its absolute path.

    Idempotent and safe to call from several processes: a lock serialises builders, and a stamp file
    holding the requirements' SHA-256 is written last, so an interrupted build is redone.

    Parameters
    ----------
    path : str or Path, optional
        The venv folder (relative: from the project root). Default ``.venv-triton``.
    python : str, optional
        Interpreter to base it on (Python 3.11 or 3.12); found on PATH when omitted.
    quiet : bool
        Print nothing but errors.

    Returns
    -------
    Path
        The venv, with ``triton/backends/python/`` assembled for the wheel's server.
    """
    env = resolve_env_path(path)
    if env_ready(env):
        return env
    with _lock(env):
        if env_ready(env):
            return env
        deps, no_deps = read_requirements()
        base = python or _find_python()
        uv = _find_uv()
        (env / STAMP).unlink(missing_ok=True)
        if not quiet:
            print(f"serving environment: creating {env} ({'uv' if uv else 'venv + pip'}, {base})", file=sys.stderr)
        if uv:
            if not _env_python(env).exists():
                _run([uv, "venv", "--quiet", "--python", base, str(env)], quiet)
            target = ["--python", str(_env_python(env))]
            _run([uv, "pip", "install", "--quiet", *target, *deps], quiet)
            if no_deps:
                _run([uv, "pip", "install", "--quiet", "--no-deps", *target, *no_deps], quiet)
        else:
            if not _env_python(env).exists():
                _run([base, "-m", "venv", str(env)], quiet)
            pip = [str(_env_python(env)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            _run([*pip, *deps], quiet)
            if no_deps:
                _run([*pip, "--no-deps", *no_deps], quiet)
        _assemble_backend(env)
        _check_numpy(env)
        from engine import atomic

        atomic.write_json(env / STAMP, {"requirements_sha256": requirements_hash(), "python": base,
                                        "libdir": _libdir(env),
                                        "requirements": deps, "no_deps": no_deps,
                                        "installer": "uv" if uv else "pip"})
    return env


def _wheel_root(env: Path) -> Path:
    return _site_packages(env) / "pytriton" / "tritonserver"


def _assemble_backend(env: Path) -> Path:
    """Copy the python backend and the stub matching the venv's Python into ``triton/backends/python``."""
    root = _wheel_root(env)
    version = _python_version(env)
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    src = root / "backends" / "python"
    if not stub.exists() or not src.is_dir():
        raise ServingEnvError(f"{root}: the nvidia-pytriton wheel has no python backend / stub for Python "
                              f"{version}")
    dest = env / "triton" / "backends" / "python"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file():
            shutil.copy2(f, dest / f.name)
    shutil.copy2(stub, dest / stub.name)
    os.chmod(dest / stub.name, 0o755)
    os.chmod(root / "bin" / "tritonserver", 0o755)
    return dest.parent


def _libdir(env: Path) -> str:
    """Where the venv's base interpreter keeps libpython (the stub links against libpython3.X)."""
    proc = subprocess.run([str(_env_python(env)), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
                          capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _check_numpy(env: Path) -> None:
    proc = subprocess.run([str(_env_python(env)), "-c", "import numpy, onnxruntime; print(numpy.__version__)"],
                          capture_output=True, text=True, timeout=120)
    version = proc.stdout.strip()
    if proc.returncode != 0 or not version.startswith("1."):
        raise ServingEnvError(f"{env}: the serving environment must hold NumPy 1.x and onnxruntime "
                              f"(found {version or proc.stderr.strip()[-200:]})")


def locate_server(env_path: str | os.PathLike | None = None, binary: str | None = None) -> TritonInstall:
    """Find the Triton server to run.

    ``binary`` (a path) wins, then a ``tritonserver`` on PATH (a production container, which brings
    its own backends), then the server in the serving venv's nvidia-pytriton wheel.

    Raises
    ------
    ServingEnvError
        When none is found (the message says how to create the serving environment).
    """
    explicit = binary or shutil.which("tritonserver")
    if explicit:
        exe = Path(explicit)
        if not exe.exists():
            raise ServingEnvError(f"tritonserver binary {exe} does not exist")
        return TritonInstall(executable=exe, backend_dir=None, env={}, source="path")
    env = resolve_env_path(env_path)
    if not env_ready(env):
        raise ServingEnvError(f"no tritonserver on PATH and the serving environment {env} is missing or out "
                              f"of date; create it with `python -m engine.serve.tritonenv` (or `make triton-env`)")
    root = _wheel_root(env)
    libs = _site_packages(env) / "nvidia_pytriton.libs"
    ld = [str(libs), str(env / "lib")]
    try:  # the libpython of the venv's own interpreter, so that the stub embeds the matching Python
        libdir = json.loads((env / STAMP).read_text(encoding="utf-8")).get("libdir") or ""
    except (OSError, ValueError):
        libdir = ""
    if libdir and list(Path(libdir).glob(f"libpython{_python_version(env)}*.so*")):
        ld.append(libdir)
    if os.environ.get("LD_LIBRARY_PATH"):
        ld.append(os.environ["LD_LIBRARY_PATH"])
    return TritonInstall(executable=root / "bin" / "tritonserver", backend_dir=env / "triton" / "backends",
                         env={"LD_LIBRARY_PATH": os.pathsep.join(ld)}, source="wheel")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.serve.tritonenv",
                                     description="create or update the Triton serving environment")
    parser.add_argument("--path", default=None, help=f"venv folder (default {DEFAULT_ENV} in the project root)")
    parser.add_argument("--python", default=None, help="base interpreter (Python 3.11 or 3.12)")
    parser.add_argument("--check", action="store_true", help="only report whether it is ready (exit 1 if not)")
    args = parser.parse_args(argv)
    if args.check:
        ok = env_ready(args.path)
        print(f"{resolve_env_path(args.path)}: {'ready' if ok else 'missing or out of date'}")
        return 0 if ok else 1
    try:
        env = ensure_env(args.path, python=args.python, quiet=False)
        server = locate_server(env)
    except TridentError as exc:
        print(f"tritonenv: error: {exc}", file=sys.stderr)
        return 2
    print(f"serving environment ready: {env} (tritonserver: {server.executable}, {server.source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
