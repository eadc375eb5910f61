"""``trident serve``'s loop: start Triton on the repository, load the served models, keep them healthy.

Every ``watch_interval_s`` seconds the supervisor checks the server (process alive, ``/v2/health/ready``)
and sends each served model one probe request (a held-out row stored with the served version). A dead
or unresponsive server is restarted on the same ports and the served models are loaded again; a model
whose stub crashed (Triton keeps calling it ready, every request fails with "Stub process ... is not
healthy") is loaded again, which starts a new stub. Each event goes to the log and to
``<repository>/.trident/events.jsonl``; leaked ``/dev/shm`` regions of dead stubs are removed.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from engine import console
from engine.errors import TridentError
from engine.serve import state
from engine.serve.server import Ports, ServerError, TritonServer, pick_ports, port_in_use
from engine.serve.tritonenv import locate_server, resolve_env_path

LOG = console.LOG


class Supervisor:
    """Owns one :class:`TritonServer` on ``repository`` and repairs it.

    Parameters
    ----------
    repository : path
        The Triton model repository (with ``.trident/served.json``).
    cfg : DeployConfig
        ``cfg.server`` gives host, ports, binary, serving venv, timeouts and the watch interval.
    """

    def __init__(self, repository: str | os.PathLike, cfg: Any) -> None:
        self.repository = Path(repository).resolve()
        self.cfg = cfg
        self.server: TritonServer | None = None
        self.restarts = 0
        self._probes: dict[tuple[str, int], list[Any]] = {}
        self._client: Any = None
        self._not_ready = 0

    # ---- start / stop -----------------------------------------------------------------------
    def start(self) -> TritonServer:
        scfg = self.cfg.server
        self.repository.mkdir(parents=True, exist_ok=True)
        install = locate_server(resolve_env_path(scfg.env_path), scfg.binary)
        ports = pick_ports(str(scfg.host), int(scfg.http_port), int(scfg.grpc_port), int(scfg.metrics_port))
        self.server = TritonServer(self.repository, install, str(scfg.host), ports,
                                   state.state_dir(self.repository) / "server.log",
                                   log_verbose=int(scfg.log_verbose), extra_args=list(scfg.extra_args))
        self.server.start(float(scfg.startup_timeout_s))
        failures = self.load_served()
        self._write_info()
        state.log_event(self.repository, "start", pid=self.server.pid, ports=ports.as_dict(), failures=failures)
        return self.server

    def _write_info(self) -> None:
        assert self.server is not None
        info = {**self.server.info(), "supervisor_pid": os.getpid(), "started": state.now(),
                "restarts": self.restarts, "watch_interval_s": float(self.cfg.server.watch_interval_s)}
        state.write_server_info(self.repository, info)

    def _close_client(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001
                pass
            self._client = None

    def stop(self) -> None:
        self._close_client()
        if self.server is not None:
            self.server.stop()
            state.log_event(self.repository, "stop", pid=self.server.pid)
        from engine.export.triton_repo import clean_pycache

        clean_pycache(self.repository)  # the stubs compile model.py next to it
        state.clear_server_info(self.repository, pid=os.getpid())

    # ---- models ----------------------------------------------------------------------------
    def client(self) -> Any:
        import tritonclient.grpc as grpcclient

        if self._client is None:
            assert self.server is not None
            self._client = grpcclient.InferenceServerClient(f"{self.server.host}:{self.server.ports.grpc}")
        return self._client

    def load_served(self) -> dict[str, str]:
        """Load every served model as configured on disk; returns ``{model: error}`` for failures."""
        from engine.serve import rollout

        failures: dict[str, str] = {}
        for name, rec in sorted(state.read_served(self.repository)["models"].items()):
            try:
                rollout.load_persisted(self.client(), self.repository, name, int(rec["version"]))
                LOG.info("loaded %s version %s", name, rec["version"])
            except Exception as exc:  # noqa: BLE001 - one broken model must not stop the others
                failures[name] = _message(exc)
                LOG.error("cannot load %s version %s: %s", name, rec["version"], failures[name])
                state.log_event(self.repository, "load_failed", model=name, version=rec["version"],
                                error=failures[name])
        return failures

    def probe_inputs(self, name: str, version: int) -> list[Any]:
        key = (name, version)
        if key not in self._probes:
            from engine.serve.client import make_inputs, schema_from_config
            from engine.serve.columns import from_json_rows, take

            cfg = self.client().get_model_config(name, str(version)).config
            sample = json.loads((self._version_dir(name, version) / "sample.json").read_text(encoding="utf-8"))
            self._probes[key] = make_inputs(schema_from_config(cfg), take(from_json_rows(sample), slice(0, 1)))
        return self._probes[key]

    def _version_dir(self, name: str, version: int) -> Path:
        from engine.export.triton_repo import model_names

        first = model_names(self.repository, name)[0]  # the features step of an ensemble
        return self.repository / first / str(version)

    def probe(self, name: str, version: int) -> str | None:
        """None when one request to ``name``/``version`` succeeds, else the error message."""
        try:
            self.client().infer(name, self.probe_inputs(name, version), model_version=str(version),
                                client_timeout=float(self.cfg.server.probe_timeout_s))
            return None
        except Exception as exc:  # noqa: BLE001
            return _message(exc)

    # ---- the watchdog ----------------------------------------------------------------------
    def check(self) -> list[dict[str, Any]]:
        """One round of health checks and repairs; returns the events it logged."""
        assert self.server is not None
        events: list[dict[str, Any]] = []
        if not self.server.alive():
            code = self.server.proc.returncode if self.server.proc is not None else None
            events.append(self._event("server_died", level="error", exit_code=code))
            events.extend(self.restart("the server process died"))
            return events
        if not self.server.ready(timeout_s=float(self.cfg.server.probe_timeout_s)):
            self._not_ready += 1
            if self._not_ready >= 3:
                events.append(self._event("server_unresponsive", level="error"))
                events.extend(self.restart("the server stopped answering readiness checks"))
            return events
        self._not_ready = 0
        for name, rec in sorted(state.read_served(self.repository)["models"].items()):
            version = int(rec["version"])
            error = self.probe(name, version)
            if error is None:
                continue
            with state.repo_lock(self.repository, blocking=False) as locked:
                if not locked:  # a deploy or rollback is changing the served set: next round
                    continue
                if state.served_version(self.repository, name) != version:
                    continue
                events.append(self._event("probe_failed", level="warning", model=name, version=version,
                                          error=error))
                events.extend(self.heal(name, version, error))
        return events

    def heal(self, name: str, version: int, error: str) -> list[dict[str, Any]]:
        """Start a new stub for ``name`` and clean the shared memory the dead one leaked.

        First a reload with the persisted config passed explicitly; when Triton keeps the broken
        instance (an unchanged model is not always reloaded), an unload followed by a load.
        """
        from engine.serve import rollout

        assert self.server is not None
        events = []
        after: str | None = error
        for how in ("reload", "unload+load"):
            try:
                if how == "reload":
                    rollout.reload(self.client(), self.repository, name, version)
                else:
                    rollout.unload(self.client(), self.repository, name)
                    rollout.load_persisted(self.client(), self.repository, name, version)
                self._probes.pop((name, version), None)
                after = self.probe(name, version)
            except Exception as exc:  # noqa: BLE001
                after = _message(exc)
            if after is None:
                break
        leaked = self.server.cleanup_shm()
        if after is None:
            events.append(self._event("healed", level="warning", model=name, version=version, cause=error,
                                      how=how, shm_removed=len(leaked)))
        else:
            events.append(self._event("heal_failed", level="error", model=name, version=version, cause=error,
                                      error=after))
        return events

    def restart(self, reason: str) -> list[dict[str, Any]]:
        assert self.server is not None
        if self.restarts >= int(self.cfg.server.max_restarts):
            raise ServerError(f"the Triton server failed {self.restarts + 1} times ({reason}); giving up "
                              f"(deploy.server.max_restarts={self.cfg.server.max_restarts}); log: "
                              f"{self.server.log_path}")
        self.restarts += 1
        old = self.server
        old.stop(timeout_s=5.0)
        self._close_client()
        self._probes.clear()
        scfg = self.cfg.server
        ports = old.ports
        if any(port_in_use(old.host, p) for p in ports.as_dict().values()):
            ports = pick_ports(old.host, 0, 0, 0) if not (scfg.http_port or scfg.grpc_port or scfg.metrics_port) \
                else Ports(old.ports.http, old.ports.grpc, old.ports.metrics)
        self.server = TritonServer(self.repository, old.install, old.host, ports, old.log_path,
                                   log_verbose=old.log_verbose, extra_args=old.extra_args)
        self.server.start(float(scfg.startup_timeout_s))
        failures = self.load_served()
        self._write_info()
        return [self._event("restarted", level="warning", reason=reason, pid=self.server.pid,
                            ports=ports.as_dict(), failures=failures, restarts=self.restarts)]

    def _event(self, event: str, level: str = "info", **details: Any) -> dict[str, Any]:
        rec = state.log_event(self.repository, event, **details)
        text = ", ".join(f"{k}={v}" for k, v in details.items())
        getattr(LOG, level)("serve: %s (%s)", event, text)
        return rec

    def run(self, stop: threading.Event) -> None:
        """Check every ``watch_interval_s`` seconds until ``stop`` is set (0: no checks, just wait)."""
        interval = float(self.cfg.server.watch_interval_s)
        while not stop.wait(interval if interval > 0 else 3600.0):
            if interval <= 0:
                continue
            try:
                self.check()
            except TridentError:
                raise
            except Exception as exc:  # noqa: BLE001 - the watchdog itself must survive surprises
                LOG.warning("serve: health check failed: %s", _message(exc))
            time.sleep(0)


def _message(exc: BaseException) -> str:
    msg = getattr(exc, "message", None)
    text = msg() if callable(msg) else (msg or str(exc) or type(exc).__name__)
    return " ".join(str(text).split())[:500]


def stop_server(repository: Path, timeout_s: float = 30.0) -> bool:
    """SIGTERM the supervisor of ``repository`` (and the server if it is orphaned); True if one ran."""
    info = state.read_server_info(repository)
    if not info:
        return False
    sup, pid = info.get("supervisor_pid"), info.get("pid")
    if state.pid_alive(sup):
        os.kill(int(sup), signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (state.pid_alive(sup) or state.pid_alive(pid)):
        time.sleep(0.1)
    for p in (pid, sup):
        if state.pid_alive(p):
            try:
                os.killpg(int(p), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    remove_shm(info.get("shm_prefix"))
    state.clear_server_info(repository)
    return True


def remove_shm(prefix: str | None) -> None:
    """Remove the ``/dev/shm`` regions of a server's python-backend prefix."""
    if not prefix:
        return
    for p in Path("/dev/shm").glob(f"{prefix}*"):
        try:
            p.unlink()
        except OSError:
            pass
