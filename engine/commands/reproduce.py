"""``trident reproduce RUN_ID``: re-run a recorded run from its manifest and compare every output.

The recorded, fully resolved config is replayed (not today's conf/), into a new run folder. Each dataset
digest, each written file's SHA-256 and each metric is compared; timing-dependent metrics (latency,
throughput, seconds) are shown but do not count. Exit status 0 when everything else is identical.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.errors import TridentError

VOLATILE_METRIC_WORDS = ("latency", "seconds", "_ms", "throughput", "per_s", "rows_s", "time")
#: JSON keys that legitimately differ between two runs of the same config (identity and timing).
VOLATILE_JSON_KEYS = {"run_id", "fit_seconds", "seconds", "started", "ended", "updated", "pid",
                      "mlflow_run_id", "created", "timestamp"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", help="the run to reproduce (a folder name under runs_dir, or a path)")
    p.add_argument("--runs-dir", default="runs", help="where run folders are (default: runs)")


def find_run(run_id: str, runs_dir: str = "runs") -> Path:
    p = Path(run_id)
    for cand in (p, Path(runs_dir) / run_id):
        if (cand / "manifest.json").is_file():
            return cand
    raise TridentError(f"no run {run_id!r}: expected {Path(runs_dir) / run_id / 'manifest.json'}")


def config_from_manifest(manifest: dict[str, Any]) -> Any:
    from omegaconf import OmegaConf

    from engine.config import register_configs
    from engine.config.schema import Config

    register_configs()
    try:
        return OmegaConf.merge(OmegaConf.structured(Config), manifest["config"])
    except Exception as exc:
        raise TridentError(f"the recorded config no longer fits the current schema: {exc}") from exc


def _volatile(name: str) -> bool:
    n = name.lower()
    return any(w in n for w in VOLATILE_METRIC_WORDS)


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE_JSON_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _same_json(a: Path, b: Path) -> bool:
    """Two JSON files equal once run ids and timings are set aside."""
    import json

    try:
        return _strip(json.loads(a.read_text())) == _strip(json.loads(b.read_text()))
    except (OSError, ValueError):
        return False


def compare(old: dict[str, Any], new: dict[str, Any], old_dir: Path | None = None,
            new_dir: Path | None = None) -> list[dict[str, Any]]:
    """One row per output: kind, name, identical (True/False/None for volatile), old and new values.

    A JSON file whose bytes differ only in run ids or timings counts as identical (``note`` says so).
    """
    rows = []
    for name in sorted(set(old.get("datasets", {})) | set(new.get("datasets", {}))):
        a = old.get("datasets", {}).get(name, {}).get("sha256")
        b = new.get("datasets", {}).get(name, {}).get("sha256")
        rows.append({"kind": "dataset", "name": name, "identical": a == b, "old": a, "new": b})
    of = {f["path"]: f["sha256"] for f in old.get("files", [])}
    nf = {f["path"]: f["sha256"] for f in new.get("files", [])}
    for name in sorted(set(of) | set(nf)):
        same = of.get(name) == nf.get(name)
        note = ""
        if (not same and name.endswith(".json") and old_dir is not None and new_dir is not None
                and name in of and name in nf and _same_json(old_dir / name, new_dir / name)):
            same, note = True, "equal except run id / timings"
        rows.append({"kind": "file", "name": name, "identical": same, "old": of.get(name), "new": nf.get(name),
                     "note": note})
    om, nm = old.get("metrics", {}), new.get("metrics", {})
    for name in sorted(set(om) | set(nm)):
        a, b = om.get(name), nm.get(name)
        same = a == b or (a is not None and b is not None and a != a and b != b)
        rows.append({"kind": "metric", "name": name, "identical": None if _volatile(name) else same,
                     "old": a, "new": b})
    rows.append({"kind": "status", "name": "status", "identical": old.get("status") == new.get("status"),
                 "old": old.get("status"), "new": new.get("status")})
    return rows


def _short(v: Any) -> str:
    if isinstance(v, str) and len(v) == 64:
        return v[:12]
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def main(args: argparse.Namespace) -> int:
    from engine import console
    from engine.pipeline import run_pipeline
    from engine.registry.manifest import load_manifest

    src = find_run(args.run_id, args.runs_dir)
    old = load_manifest(src)
    if old.get("status") not in ("succeeded", "rejected"):
        console.out(f"note: run {old['run_id']} ended with status {old.get('status')!r}")
    cfg = config_from_manifest(old)
    cfg.runs_dir = str(src.parent)
    ctx = run_pipeline(cfg, overrides=old.get("overrides", []))
    new = ctx.manifest.data
    rows = compare(old, new, src, ctx.run_dir)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"reproduce {old['run_id']} -> {ctx.run_id}")
    for col in ("kind", "output", "result", "recorded", "now"):
        table.add_column(col)
    for r in rows:
        res = "varies (timing)" if r["identical"] is None else ("identical" if r["identical"] else "DIFFERS")
        if r.get("note"):
            res += f" ({r['note']})"
        table.add_row(r["kind"], r["name"], res, _short(r["old"]), _short(r["new"]))
    if not console.quiet():
        Console().print(table)
    diffs = [r for r in rows if r["identical"] is False]
    from engine.atomic import write_json

    write_json(ctx.run_dir / "reproduction.json", {"source_run": old["run_id"], "rows": rows,
                                                   "identical": not diffs})
    console.out(f"reproduce: {len(rows) - len(diffs)}/{len(rows)} outputs identical"
                + ("" if not diffs else f"; differs: {', '.join(r['name'] for r in diffs)}"))
    return 0 if not diffs else 1
