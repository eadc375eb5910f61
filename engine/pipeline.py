"""The stage DAG of ``trident run``: every stage writes records into the run folder; gates stop the flow.

A stage is a plain function ``stage(ctx: RunContext) -> None``. It reads what earlier stages left in
``ctx.state``, writes its artifacts through ``ctx.write_*`` (atomic, recorded in the manifest with their
SHA-256) and its numbers through ``ctx.log_metrics``. Ending the run early with a verdict (for example
``rejected`` when no candidate meets the KPIs) is ``raise StopRun(status, reason)``.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine import atomic, console
from engine.backend import Backend
from engine.errors import TridentError
from engine.registry.manifest import Manifest

LOG = console.LOG

#: (stage name, "module:function"), in order. Stages run until ``cfg.until`` or a StopRun.
STAGES: list[tuple[str, str]] = [
    ("ingest", "engine.data.stage:ingest"),
    ("validate", "engine.data.stage:validate"),
    ("profile", "engine.data.profiling:stage"),
    ("govern", "engine.train.stage:govern"),
    ("split", "engine.train.stage:split"),
    ("features", "engine.train.stage:features"),
    ("reference", "engine.monitor.stage:reference"),
    ("train", "engine.train.stage:train"),
    ("evaluate", "engine.evaluate.stage:evaluate"),
    ("select", "engine.evaluate.stage:select"),
    ("register", "engine.registry.stage:register"),
    ("deploy", "engine.serve.deploy:deploy_stage"),
]


class StopRun(Exception):
    """End the run early with a final status (e.g. ``rejected``) and a reason; not an error."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def new_run_id() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def derive_seed(master: int, name: str) -> int:
    """A stable 31-bit seed for ``name`` derived from the master seed."""
    h = hashlib.sha256(f"{int(master)}:{name}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


@dataclass
class RunContext:
    """What a stage sees: the config, the backend, the run folder and the state left by earlier stages."""

    cfg: Any
    run_id: str
    run_dir: Path
    backend: Backend
    manifest: Manifest
    state: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tracker: Any = None

    # ---- seeds -------------------------------------------------------------------------------
    def seed(self, name: str) -> int:
        """The seed for ``name`` (recorded in the manifest)."""
        s = derive_seed(int(self.cfg.seed), name)
        self.manifest["seeds"][name] = s
        return s

    # ---- artifacts ---------------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        return self.run_dir / rel

    def record_file(self, rel: str | os.PathLike) -> dict[str, Any]:
        """Record a file already written (atomically) under the run folder."""
        return self.manifest.add_file(self.run_dir / rel)

    def record_dir(self, rel: str | os.PathLike) -> None:
        """Record every file under a folder of the run folder."""
        base = self.run_dir / rel
        for p in sorted(base.rglob("*")):
            if p.is_file() and not p.name.startswith(atomic.TMP_PREFIX):
                self.manifest.add_file(p)

    def write_json(self, rel: str, obj: Any) -> Path:
        p = atomic.write_json(self.path(rel), obj)
        self.record_file(rel)
        return p

    def write_text(self, rel: str, text: str) -> Path:
        p = atomic.write_text(self.path(rel), text)
        self.record_file(rel)
        return p

    def write_bytes(self, rel: str, data: bytes) -> Path:
        p = atomic.write_bytes(self.path(rel), data)
        self.record_file(rel)
        return p

    def write_npz(self, rel: str, arrays: dict[str, np.ndarray]) -> Path:
        p = atomic.write_npz(self.path(rel), arrays)
        self.record_file(rel)
        return p

    def write_with(self, rel: str, writer: Callable[[Path], None]) -> Path:
        """``writer(tmp_path)`` writes the file; it lands under ``rel`` atomically."""
        p = atomic.atomic_write(self.path(rel), writer)
        self.record_file(rel)
        return p

    # ---- records -----------------------------------------------------------------------------
    def add_input(self, path: str | os.PathLike) -> dict[str, Any]:
        return self.manifest.add_input(path)

    def add_dataset(self, name: str, frame: Any) -> str:
        """Record the SHA-256 of a dataset as used (content, column names and dtypes)."""
        digest = dataset_sha256(frame)
        self.manifest["datasets"][name] = {"sha256": digest, "rows": int(len(frame)),
                                           "columns": int(frame.shape[1])}
        return digest

    def log_metrics(self, metrics: dict[str, float], prefix: str = "") -> None:
        for k, v in metrics.items():
            if v is None:
                continue
            try:
                fv = float(v)
            except (TypeError, ValueError):
                continue
            self.metrics[prefix + k] = fv
        self.manifest["metrics"] = dict(sorted(self.metrics.items()))

    def record_gate(self, name: str, passed: bool, details: dict[str, Any] | None = None) -> None:
        """Gates are data: stored with the run, read by later commands that must refuse to proceed."""
        self.manifest["gates"][name] = {"passed": bool(passed), "at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
                                        **(details or {})}
        self.manifest.save()


def dataset_sha256(frame: Any) -> str:
    """Content hash of a pandas (or cuDF) frame: column names, dtypes and values, row order included."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame) and hasattr(frame, "to_pandas"):
        frame = frame.to_pandas()
    h = hashlib.sha256()
    h.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    if len(frame):
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _resolve(target: str | Callable[[RunContext], None]) -> Callable[[RunContext], None]:
    if callable(target):
        return target
    mod, fn = target.split(":")
    return getattr(importlib.import_module(mod), fn)


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_pipeline(cfg: Any, overrides: list[str] | None = None, run_id: str | None = None,
                 stages: list[tuple[str, Any]] | None = None) -> RunContext:
    """Run the stages for ``cfg``; return the finished context (its manifest holds the status).

    Raises
    ------
    TridentError
        A user-facing failure (bad data, bad config, a gate); the manifest records it first.
    """
    from engine.backend import select_backend
    from engine.backend.hardware import describe
    from engine.config import to_container
    from engine.registry import provenance

    stages = STAGES if stages is None else stages
    backend = select_backend(getattr(cfg.backend.name, "value", cfg.backend.name))
    run_id = run_id or new_run_id()
    run_dir = Path(cfg.runs_dir).resolve() / run_id
    if run_dir.exists():
        raise TridentError(f"run folder {run_dir} already exists; choose another run id")
    run_dir.mkdir(parents=True)
    manifest = Manifest(run_id, run_dir)
    manifest["overrides"] = list(overrides or [])
    manifest["config"] = to_container(cfg)
    manifest["git"] = provenance.git_state()
    manifest["code_sha256"] = provenance.code_sha256()
    manifest["packages"] = provenance.package_versions()
    manifest["backend"] = backend.record()
    manifest["hardware"] = describe()
    manifest["cwd"] = os.getcwd()
    manifest.save()
    ctx = RunContext(cfg=cfg, run_id=run_id, run_dir=run_dir, backend=backend, manifest=manifest)
    ctx.seed("master")
    LOG.info("run %s: backend %s (%s), folder %s", run_id, backend.name, backend.requested, run_dir)
    for note in backend.notes:
        LOG.info("backend: %s", note)

    old = signal.signal(signal.SIGTERM, _sigterm) if _main_thread() else None
    from engine.registry.tracking import Tracker

    ctx.tracker = Tracker.start(cfg, ctx)
    until = str(cfg.until or "")
    names = [n for n, _ in stages]
    n_stages = names.index(until) + 1 if until in names else len(stages)
    progress = console.progress_session(n_stages, f"stage 1/{n_stages}: {names[0] if names else ''}")
    advance = progress.__enter__()
    try:
        for i, (name, target) in enumerate(stages):
            if i:
                advance(f"stage {i + 1}/{n_stages}: {name}")
            t0 = time.perf_counter()
            rec = {"name": name, "status": "running", "started": _dt.datetime.now(_dt.timezone.utc).isoformat()}
            manifest["stages"].append(rec)
            manifest.save()
            LOG.info("stage %s ...", name)
            try:
                _resolve(target)(ctx)
            except StopRun as stop:
                rec.update(status=stop.status, seconds=round(time.perf_counter() - t0, 4), reason=stop.reason)
                manifest["status"] = stop.status
                manifest["reason"] = stop.reason
                LOG.warning("run %s: %s", stop.status, stop.reason)
                break
            except BaseException as exc:
                rec.update(status="failed", seconds=round(time.perf_counter() - t0, 4), error=str(exc) or type(exc).__name__)
                manifest["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                manifest["error"] = str(exc) or type(exc).__name__
                raise
            rec.update(status="succeeded", seconds=round(time.perf_counter() - t0, 4))
            manifest.save()
            if until and name == until:
                LOG.info("stopping after stage %s (until=%s)", name, until)
                break
        else:
            pass
        if manifest["status"] == "running":
            manifest["status"] = "succeeded"
    except BaseException as exc:  # a signal between stages (saving the manifest, the progress display)
        if manifest["status"] == "running":
            manifest["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            manifest["error"] = str(exc) or type(exc).__name__
        raise
    finally:
        progress.__exit__(None, None, None)
        manifest["ended"] = _dt.datetime.now(_dt.timezone.utc).isoformat()
        manifest["pid"] = None
        manifest.save()
        try:
            ctx.tracker.finish(ctx)
        finally:
            manifest.save()
            if old is not None:
                signal.signal(signal.SIGTERM, old)
    return ctx


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
