"""What a model repository serves, kept beside it in ``<repository>/.trident/``.

- ``served.json``: model -> the served version and its history (deploys, rollbacks), written atomically;
  ``trident serve`` loads exactly these on start and after a restart.
- ``server.json``: the running server (pids, host, ports), written by ``trident serve`` so that
  ``deploy``, ``rollback`` and ``predict`` find it; removed when it stops.
- ``events.jsonl``: one line per serving event (start, stop, restart, heal, deploy, rollback).
- ``lock``: held while the served set changes (a deploy's promotion, a rollback, a watchdog repair).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine import atomic

STATE_DIR = ".trident"
SERVED = "served.json"
SERVER = "server.json"
EVENTS = "events.jsonl"
LOCK = "lock"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def state_dir(repository: str | os.PathLike) -> Path:
    d = Path(repository) / STATE_DIR
    d.mkdir(parents=True, exist_ok=True)
    return d


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ---- served models ------------------------------------------------------------------------------
def read_served(repository: str | os.PathLike) -> dict[str, Any]:
    """``{"models": {name: {"version": int, "layout": str, "history": [...]}}}``."""
    data = _read(Path(repository) / STATE_DIR / SERVED) or {}
    data.setdefault("models", {})
    return data


def served_version(repository: str | os.PathLike, name: str) -> int | None:
    rec = read_served(repository)["models"].get(name)
    return int(rec["version"]) if rec and rec.get("version") is not None else None


def set_served(repository: str | os.PathLike, name: str, version: int, event: str, **details: Any) -> dict[str, Any]:
    """Record that ``name`` now serves ``version`` (appending ``event`` to its history); atomic."""
    data = read_served(repository)
    rec = data["models"].setdefault(name, {"version": None, "history": []})
    entry = {"at": now(), "event": event, "version": int(version), "previous": rec.get("version"), **details}
    rec["version"] = int(version)
    for key in ("layout",):
        if key in details:
            rec[key] = details[key]
    rec["history"].append(entry)
    atomic.write_json(state_dir(repository) / SERVED, data)
    return entry


def remove_served(repository: str | os.PathLike, name: str) -> None:
    data = read_served(repository)
    if data["models"].pop(name, None) is not None:
        atomic.write_json(state_dir(repository) / SERVED, data)


# ---- the running server -------------------------------------------------------------------------
def write_server_info(repository: str | os.PathLike, info: dict[str, Any]) -> Path:
    return atomic.write_json(state_dir(repository) / SERVER, info)


def read_server_info(repository: str | os.PathLike) -> dict[str, Any] | None:
    return _read(Path(repository) / STATE_DIR / SERVER)


def clear_server_info(repository: str | os.PathLike, pid: int | None = None) -> None:
    """Remove server.json (only when it still describes the supervisor ``pid``, if given)."""
    p = Path(repository) / STATE_DIR / SERVER
    info = _read(p)
    if info is not None and pid is not None and info.get("supervisor_pid") != pid:
        return
    p.unlink(missing_ok=True)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{int(pid)}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


# ---- events and the lock -------------------------------------------------------------------------
def log_event(repository: str | os.PathLike, event: str, **details: Any) -> dict[str, Any]:
    rec = {"at": now(), "event": event, **details}
    with open(state_dir(repository) / EVENTS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec, default=str, sort_keys=True) + "\n")
    return rec


def read_events(repository: str | os.PathLike) -> list[dict[str, Any]]:
    p = Path(repository) / STATE_DIR / EVENTS
    if not p.is_file():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


@contextlib.contextmanager
def repo_lock(repository: str | os.PathLike, blocking: bool = True) -> Iterator[bool]:
    """Hold the repository's lock; yields False (and holds nothing) when ``blocking`` is False and it
    is taken."""
    with open(state_dir(repository) / LOCK, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
