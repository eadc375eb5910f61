"""The run manifest: runs/<run_id>/manifest.json, rewritten atomically after every stage."""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.atomic import sha256_file, write_json

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Manifest:
    """Everything needed to audit and reproduce a run."""

    run_id: str
    run_dir: Path
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data.setdefault("format_version", FORMAT_VERSION)
        self.data.setdefault("run_id", self.run_id)
        self.data.setdefault("status", "running")
        self.data.setdefault("pid", os.getpid())
        self.data.setdefault("started", now())
        for key in ("stages", "files", "inputs"):
            self.data.setdefault(key, [])
        for key in ("datasets", "seeds", "metrics", "gates"):
            self.data.setdefault(key, {})

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value

    def add_input(self, path: str | os.PathLike) -> dict[str, Any]:
        """Record an input file (or every file of an input folder) with its SHA-256."""
        p = Path(path)
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        recs = []
        for f in files:
            rec = {"path": str(f.resolve()), "sha256": sha256_file(f), "bytes": f.stat().st_size}
            self.data["inputs"].append(rec)
            recs.append(rec)
        return recs[0] if len(recs) == 1 else {"path": str(p.resolve()), "files": recs}

    def add_file(self, path: str | os.PathLike) -> dict[str, Any]:
        """Record a file this run wrote (path relative to the run folder)."""
        p = Path(path)
        if not p.is_absolute() and not p.exists():
            p = self.run_dir / p
        rel = str(p.resolve().relative_to(self.run_dir.resolve()))
        full = self.run_dir / rel
        rec = {"path": rel, "sha256": sha256_file(full), "bytes": full.stat().st_size}
        self.data["files"] = [f for f in self.data["files"] if f["path"] != rel] + [rec]
        return rec

    def save(self) -> Path:
        self.data["updated"] = now()
        return write_json(self.run_dir / MANIFEST, self.data)


def load_manifest(run_dir: str | os.PathLike) -> dict[str, Any]:
    import json

    path = Path(run_dir) / MANIFEST
    return json.loads(path.read_text(encoding="utf-8"))
