"""Start, check and stop one Triton Inference Server process on a model repository.

The server runs in its own process group (its python-backend stubs with it) with explicit model
control, no auto-completed configs, every endpoint bound to ``host`` (127.0.0.1 by default), and a
python-backend shared-memory prefix of its own so that the ``/dev/shm`` regions it leaks (one per
crashed stub) can be found and removed.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import TridentError
from engine.serve.tritonenv import TritonInstall

SHM_DIR = Path("/dev/shm")


class ServerError(TridentError):
    """The Triton server did not start, or stopped answering."""


@dataclass
class Ports:
    http: int
    grpc: int
    metrics: int

    def as_dict(self) -> dict[str, int]:
        return {"http": self.http, "grpc": self.grpc, "metrics": self.metrics}


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (bind to port 0 and release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pick_ports(host: str, http: int = 0, grpc: int = 0, metrics: int = 0) -> Ports:
    """The requested ports, each 0 replaced by a distinct free port."""
    chosen: list[int] = []
    for want in (http, grpc, metrics):
        p = int(want)
        while p == 0 or p in chosen:
            p = free_port(host)
        chosen.append(p)
    return Ports(*chosen)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, int(port))) == 0


class TritonServer:
    """One ``tritonserver`` process.

    Parameters
    ----------
    repository : path
        The model repository.
    install : TritonInstall
        Binary, backend folder and environment (engine.serve.tritonenv.locate_server).
    host : str
        Address every endpoint binds to.
    ports : Ports
        HTTP, gRPC and metrics ports (all non-zero).
    log_path : path
        File receiving the server's output (appended).
    """

    def __init__(self, repository: str | os.PathLike, install: TritonInstall, host: str, ports: Ports,
                 log_path: str | os.PathLike, log_verbose: int = 0, extra_args: list[str] | None = None,
                 shm_prefix: str | None = None) -> None:
        self.repository = Path(repository).resolve()
        self.install = install
        self.host = host
        self.ports = ports
        self.log_path = Path(log_path)
        self.log_verbose = int(log_verbose)
        self.extra_args = list(extra_args or [])
        self.shm_prefix = shm_prefix or f"trident-{os.getpid()}-{secrets.token_hex(3)}-"
        self.proc: subprocess.Popen | None = None

    # ---- command line ----------------------------------------------------------------------
    def command(self) -> list[str]:
        cmd = [str(self.install.executable),
               f"--model-repository={self.repository}",
               "--model-control-mode=explicit",
               "--disable-auto-complete-config",
               "--strict-readiness=false",  # readiness of the server itself; models are probed one by one
               "--exit-on-error=false",
               "--exit-timeout-secs=5",
               f"--http-address={self.host}", f"--http-port={self.ports.http}",
               f"--grpc-address={self.host}", f"--grpc-port={self.ports.grpc}",
               f"--metrics-address={self.host}", f"--metrics-port={self.ports.metrics}",
               "--allow-metrics=true", "--allow-gpu-metrics=false",
               "--metrics-config=summary_latencies=true",
               f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
               f"--log-verbose={self.log_verbose}"]
        if self.install.backend_dir is not None:
            cmd.append(f"--backend-directory={self.install.backend_dir}")
        return cmd + self.extra_args

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> None:
        """Start the process and wait until it is ready.

        Raises
        ------
        ServerError
            The process exited or did not get ready in time (with the last lines of its log).
        """
        for name, port in self.ports.as_dict().items():
            if port_in_use(self.host, port):
                raise ServerError(f"{self.host}:{port} ({name} port) is already in use; choose another port "
                                  f"(deploy.server.{name}_port, 0 = a free one)")
        env = dict(os.environ)
        env.update(self.install.env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                         cwd=str(self.repository))
        except OSError as exc:
            raise ServerError(f"cannot start {self.install.executable}: {exc}") from exc
        finally:
            log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"tritonserver exited with code {self.proc.returncode} while starting: "
                                  f"{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.1)
        self.stop()
        raise ServerError(f"tritonserver was not ready after {timeout_s:g} s: {self.log_tail()}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self, timeout_s: float = 1.0) -> bool:
        """True when the server answers ``/v2/health/ready`` with 200."""
        url = f"http://{self.host}:{self.ports.http}/v2/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - loopback URL we built
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``timeout_s``, remove leaked shm."""
        if self.proc is not None and self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            _signal_group(self.proc.pid, signal.SIGKILL)  # stubs left behind, if any
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.cleanup_shm(all_regions=True)

    def kill(self) -> None:
        """SIGKILL the whole group at once (tests; a hung server)."""
        if self.proc is not None:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    # ---- shared memory -------------------------------------------------------------------
    def stub_pids(self) -> list[int]:
        return [p for p, _ in self._stubs()]

    def _stubs(self) -> list[tuple[int, list[str]]]:
        import psutil

        if not self.alive():
            return []
        out = []
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                try:
                    cmd = child.cmdline()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                if cmd and cmd[0].endswith("triton_python_backend_stub"):
                    out.append((child.pid, cmd))
        except psutil.NoSuchProcess:
            return []
        return out

    def cleanup_shm(self, all_regions: bool = False) -> list[str]:
        """Remove this server's ``/dev/shm`` regions that no live stub uses (all of them when
        ``all_regions``); returns the names removed."""
        if not SHM_DIR.is_dir():
            return []
        in_use: set[str] = set()
        if not all_regions:
            for _, cmd in self._stubs():
                in_use.update(a for a in cmd[1:] if a.startswith(self.shm_prefix))
        removed = []
        for p in SHM_DIR.glob(f"{self.shm_prefix}*"):
            if p.name not in in_use:
                try:
                    p.unlink()
                    removed.append(p.name)
                except OSError:
                    pass
        return removed

    def log_tail(self, lines: int = 4) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        keep = [ln.strip() for ln in text if ln.strip() and not ln.startswith(("+", "|"))][-lines:]
        return " | ".join(keep) + f" (log: {self.log_path})"

    def info(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "ports": self.ports.as_dict(),
                "grpc_url": f"{self.host}:{self.ports.grpc}", "http_url": f"{self.host}:{self.ports.http}",
                "metrics_url": f"http://{self.host}:{self.ports.metrics}/metrics",
                "repository": str(self.repository), "binary": str(self.install.executable),
                "source": self.install.source, "shm_prefix": self.shm_prefix, "log": str(self.log_path)}


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
