"""``trident serve``: run the Triton server on the model repository and keep it healthy.

Starts the real ``tritonserver`` (``tritonserver`` on PATH, else the serving environment's) bound to
127.0.0.1, loads the served models, prints the gRPC / HTTP / metrics ports and watches: a dead server is
restarted, a crashed model stub is reloaded. Ctrl-C or SIGTERM stops it cleanly. ``--background``
starts it detached and returns once it serves; ``--stop`` stops it; ``--status`` reports it.
"""
from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    _options(p)
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="KEY=VALUE",
                   help="Hydra overrides, e.g. deploy.server.watch_interval_s=1")


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repository", default=None, help="model repository (default deploy.export.repository)")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, default=None, help="HTTP port (0 = a free port)")
    p.add_argument("--grpc-port", type=int, default=None, help="gRPC port (0 = a free port)")
    p.add_argument("--metrics-port", type=int, default=None, help="metrics port (0 = a free port)")
    p.add_argument("--watch-interval", type=float, default=None,
                   help="seconds between health checks (0 = no watchdog)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--background", action="store_true", help="start detached; return once it serves")
    mode.add_argument("--foreground", action="store_true", help="run in this process (the default)")
    mode.add_argument("--stop", action="store_true", help="stop the server running on the repository")
    mode.add_argument("--status", action="store_true", help="print the running server's ports and models")


def _config(args: argparse.Namespace) -> Any:
    from engine.serve.settings import load_config

    return load_config(list(args.overrides), args.repository, host=args.host, http_port=args.http_port,
                       grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                       watch_interval_s=args.watch_interval)


def _print_ready(info: dict[str, Any], served: dict[str, Any]) -> None:
    from engine import console

    console.out(f"Triton server ready (pid {info['pid']}, {info.get('source', '?')}) on {info['repository']}")
    console.out(f"  gRPC     {info['grpc_url']}")
    console.out(f"  HTTP     {info['http_url']}")
    console.out(f"  metrics  {info['metrics_url']}")
    models = ", ".join(f"{n} v{r['version']}" for n, r in sorted(served.items())) or "none yet (trident deploy)"
    console.out(f"  models   {models}")


def _foreground(cfg: Any, repository: Path) -> int:
    from engine import console
    from engine.serve import state
    from engine.serve.supervisor import Supervisor, remove_shm

    info = state.read_server_info(repository)
    if info and state.pid_alive(info.get("supervisor_pid")) and info.get("supervisor_pid") != os.getpid():
        console.out(f"a Triton server already serves {repository} (supervisor pid {info['supervisor_pid']}):")
        _print_ready(info, state.read_served(repository)["models"])
        return 0
    if info and state.pid_alive(info.get("pid")):  # a server whose supervisor died: replace it
        console.LOG.warning("serve: stopping the orphaned Triton server (pid %s)", info["pid"])
        try:
            os.killpg(int(info["pid"]), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + 15
        while state.pid_alive(info["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if state.pid_alive(info["pid"]):
            os.killpg(int(info["pid"]), signal.SIGKILL)
        remove_shm(info.get("shm_prefix"))
        state.log_event(repository, "orphan_stopped", pid=info["pid"])
    stop = threading.Event()

    def _handler(signum: int, frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, _handler) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    sup = Supervisor(repository, cfg.deploy)
    try:
        sup.start()
        _print_ready(state.read_server_info(repository) or {}, state.read_served(repository)["models"])
        sup.run(stop)
    finally:
        sup.stop()
        for s, h in old.items():
            signal.signal(s, h)
    console.out("Triton server stopped")
    return 0


def main(args: argparse.Namespace) -> int:
    from engine import console
    from engine.serve import state
    from engine.serve.deploy import running_server, start_background
    from engine.serve.supervisor import stop_server

    from engine.errors import TridentError
    from engine.serve.settings import parse_rest, split_positionals

    plain, args.overrides = split_positionals(parse_rest(args, _options))
    if plain:
        raise TridentError(f"serve takes no positional arguments, got {plain}")
    cfg = _config(args)
    repository = Path(str(cfg.deploy.export.repository)).expanduser().resolve()
    if args.stop:
        console.out(f"stopped the server on {repository}" if stop_server(repository)
                    else f"no server runs on {repository}")
        return 0
    if args.status:
        info = running_server(repository)
        if info is None:
            console.out(f"no server runs on {repository}")
            return 1
        _print_ready(info, state.read_served(repository)["models"])
        return 0
    if args.background:
        info = running_server(repository)
        if info is None:
            passthrough = list(args.overrides)
            for flag, value in (("host", args.host), ("http_port", args.http_port), ("grpc_port", args.grpc_port),
                                ("metrics_port", args.metrics_port), ("watch_interval_s", args.watch_interval)):
                if value is not None:
                    passthrough.append(f"deploy.server.{flag}={value}")
            info = start_background(repository, passthrough, timeout_s=float(cfg.deploy.server.startup_timeout_s) + 60)
        _print_ready(info, state.read_served(repository)["models"])
        return 0
    return _foreground(cfg, repository)
