"""Change what a running Triton server serves: load, switch versions, stage a candidate beside the served
model. Every switch is persisted: ``config.pbtxt`` on disk says the served version, so a restarted
server loads the same one (a config passed to ``load_model`` alone is not written anywhere).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from engine.errors import TridentError
from engine.export import triton_config as tc
from engine.export import triton_repo

CANDIDATE_SUFFIX = "__candidate"


class RolloutError(TridentError):
    """A model could not be loaded or switched (the server's message included)."""


def _message(exc: BaseException) -> str:
    msg = getattr(exc, "message", None)
    text = msg() if callable(msg) else (msg or str(exc) or type(exc).__name__)
    return " ".join(str(text).split())


def _components(repository: Path, name: str) -> list[tuple[str, Any]]:
    """(model name, on-disk config) of ``name`` and its ensemble steps, steps first."""
    out = []
    for m in triton_repo.model_names(repository, name):
        cfg = triton_repo.read_config(repository, m)
        if cfg is None:
            raise RolloutError(f"{repository / m} has no config.pbtxt: export the model first (trident deploy)")
        out.append((m, cfg))
    return out


def versions_to_serve(cfg: Any, version: int, standby: int | None = None) -> list[int]:
    """The ``version_policy`` versions that serve ``version``.

    Requests without a version go to the highest loaded version, so a warm standby (a version kept
    loaded, idle, for an instant rollback) must be lower than ``version``. ``standby=None`` keeps the
    standby the config already has when it still serves ``version``.
    """
    if standby is not None and int(standby) < int(version):
        return [int(standby), int(version)]
    current = tc.served_versions(cfg)
    if standby is None and current and max(current) == int(version):
        return current
    return [int(version)]


def persist_version(repository: str | os.PathLike, name: str, version: int,
                    standby: int | None = None) -> list[tuple[str, Any]]:
    """Rewrite the configs of ``name`` (and its steps) to serve ``version`` (plus a lower warm
    ``standby``); atomic per file.

    Raises
    ------
    RolloutError
        When a version folder is missing.
    """
    repository = Path(repository)
    out = []
    for m, cfg in _components(repository, name):
        versions = versions_to_serve(cfg, version, standby)
        for v in versions:
            if not (repository / m / str(v)).is_dir():
                raise RolloutError(f"{repository / m} has no version {v} (versions on disk: "
                                   f"{triton_repo.version_folders(repository, m)})")
        new = tc.set_versions(cfg, versions)
        if tc.to_pbtxt(new) != tc.to_pbtxt(cfg):
            triton_repo.write_config(repository, m, new)
        out.append((m, new))
    return out


def load_persisted(client: Any, repository: str | os.PathLike, name: str, version: int) -> None:
    """Make the configs on disk serve ``version`` and load ``name`` (steps first) from them."""
    for m, _ in persist_version(repository, name, version):
        try:
            client.load_model(m)
        except Exception as exc:  # noqa: BLE001 - InferenceServerException
            raise RolloutError(f"cannot load {m} version {version}: {_message(exc)}") from None


def reload(client: Any, repository: str | os.PathLike, name: str, version: int) -> None:
    """Load ``name`` again with its persisted config passed explicitly (new model instances)."""
    for m, cfg in persist_version(repository, name, version):
        try:
            client.load_model(m, config=tc.to_json(cfg))
        except Exception as exc:  # noqa: BLE001
            raise RolloutError(f"cannot reload {m} version {version}: {_message(exc)}") from None


def unload(client: Any, repository: str | os.PathLike, name: str, timeout_s: float = 30.0) -> None:
    """Unload ``name`` (ensemble first, then its steps) and wait until Triton has let it go."""
    models = list(reversed(triton_repo.model_names(repository, name)))
    for m in models:
        try:
            client.unload_model(m)
        except Exception:  # noqa: BLE001 - not loaded
            pass
    _wait_unloaded(client, models, timeout_s)


def _wait_unloaded(client: Any, models: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while models and time.monotonic() < deadline:  # unloading is asynchronous
        try:
            index = {r.name: r.state for r in client.get_model_repository_index().models}
        except Exception:  # noqa: BLE001
            return
        if all(index.get(m) in (None, "UNAVAILABLE", "") for m in models):
            return
        time.sleep(0.05)


def switch(client: Any, repository: str | os.PathLike, name: str, version: int,
           standby: int | None = None) -> float:
    """Serve ``version`` of ``name`` now and from now on; returns the seconds the switch took.

    The new version is loaded with a config whose ``version_policy`` lists it (and a lower warm
    ``standby``): Triton loads what is not loaded yet, routes new requests to ``version``, lets
    in-flight requests on the old one finish, then unloads what is no longer listed. Switching to a
    version already loaded as the standby takes milliseconds. The same config is written to disk
    first, so a restart keeps it.
    """
    comps = persist_version(repository, name, version, standby)
    t0 = time.perf_counter()
    for m, cfg in comps:
        try:
            client.load_model(m, config=tc.to_json(cfg))
        except Exception as exc:  # noqa: BLE001
            raise RolloutError(f"cannot switch {m} to version {version}: {_message(exc)}") from None
    return time.perf_counter() - t0


def candidate_name(name: str) -> str:
    return f"{name}{CANDIDATE_SUFFIX}"


def load_candidate(client: Any, repository: str | os.PathLike, name: str, version: int) -> str:
    """Load version ``version`` of ``name`` under its own name (``<name>__candidate``) beside the served
    model, so that requests without a version keep getting the served one; returns that name."""
    cand = candidate_name(name)
    unload_candidate(client, repository, name)
    models = triton_repo.stage_copy(repository, name, version, cand)
    for m in models:
        try:
            client.load_model(m)
        except Exception as exc:  # noqa: BLE001
            unload_candidate(client, repository, name)
            raise RolloutError(f"cannot load the candidate {m} (version {version}): {_message(exc)}") from None
    return cand


def unload_candidate(client: Any, repository: str | os.PathLike, name: str) -> None:
    """Unload and delete ``<name>__candidate`` (and its steps); nothing happens when there is none."""
    cand = candidate_name(name)
    repository = Path(repository)
    models = list(reversed(triton_repo.model_names(repository, cand))) if (repository / cand).exists() else []
    for m in models:
        try:
            client.unload_model(m)
        except Exception:  # noqa: BLE001 - not loaded
            pass
    _wait_unloaded(client, models, 10.0)  # before its files go
    triton_repo.remove_model(repository, cand)


def is_served(client: Any, name: str, version: int) -> bool:
    try:
        return bool(client.is_model_ready(name, str(version)))
    except Exception:  # noqa: BLE001
        return False
