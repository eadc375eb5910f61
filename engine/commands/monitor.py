"""``trident monitor RUN [monitor.KEY=VALUE ...] --input FILE``: drift of new data against the run's reference sketch.

Every numeric feature gets PSI, Jensen-Shannon, Wasserstein (binned), KS, mean/std shift and the
missing-rate change; every categorical PSI and a two-sample chi-square test, new and vanished
categories; plus the correlation shift and an overall verdict from the thresholds in ``conf/monitor``
(as recorded with the run; ``monitor.*`` overrides change them). The report is printed and written as
JSON (atomically).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.errors import DataError, TridentError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", help="the run whose reference sketch to compare against (runs/<id> or a path)")
    p.add_argument("--input", required=True, help="current data: a CSV file, Parquet file or Parquet folder")
    p.add_argument("--output", default=None,
                   help="where to write the JSON report (default: runs/<id>/monitor/drift-<input name>.json)")
    p.add_argument("--runs-dir", default="runs", help="where run folders are (default: runs)")
    p.add_argument("--exact-ks", action="store_true", help="not available from a sketch alone; see the docs")
    p.add_argument("--fail-on-drift", action="store_true", help="exit with status 4 when the data drifted")
    p.add_argument("--top", type=int, default=20, help="features shown in the table (default 20)")
    p.add_argument("overrides", nargs="*", metavar="monitor.KEY=VALUE", help="threshold overrides")


def _read(path: str) -> Any:
    from engine.data.ingest import read_csv, read_parquet

    p = Path(path)
    if not p.exists():
        raise DataError(f"--input {path}: no such file or folder")
    if p.is_dir() or p.suffix.lower() in (".parquet", ".pq"):
        return read_parquet(p)
    return read_csv(p)


def _config(manifest: dict[str, Any], overrides: list[str]) -> Any:
    from omegaconf import OmegaConf

    from engine.commands.reproduce import config_from_manifest
    from engine.monitor.stage import monitor_config

    cfg = config_from_manifest(manifest)
    for o in overrides:
        key, _, value = o.partition("=")
        if not key.startswith("monitor.") or not _:
            raise TridentError(f"override {o!r}: expected monitor.KEY=VALUE")
        try:
            OmegaConf.update(cfg, key, value, merge=False)
        except Exception as exc:
            raise TridentError(f"override {o!r}: {str(exc).splitlines()[0]}") from exc
    try:
        return monitor_config(cfg.monitor)
    except Exception as exc:
        raise TridentError(f"monitor config: {str(exc).splitlines()[0]}") from exc


def main(args: argparse.Namespace) -> int:
    from engine import console
    from engine.atomic import write_json
    from engine.commands.reproduce import find_run
    from engine.monitor import ReferenceSketch, compare
    from engine.monitor.stage import REFERENCE_DIR
    from engine.registry.manifest import load_manifest

    run = find_run(args.run_id, args.runs_dir)
    if not (run / REFERENCE_DIR / "sketch.json").is_file():
        raise TridentError(f"run {run.name} has no reference sketch ({run / REFERENCE_DIR}); runs made with "
                           "monitor.enabled=true and past the 'reference' stage have one")
    if args.exact_ks:
        raise TridentError("--exact-ks needs the reference data itself; use engine.monitor.compare(..., exact_ks=True,"
                           " reference=frame) from Python")
    manifest = load_manifest(run)
    cfg = _config(manifest, list(args.overrides))
    sketch = ReferenceSketch.load(run / REFERENCE_DIR)
    frame = _read(args.input)
    missing = [c for c in list(sketch.numeric) + list(sketch.categorical) if c not in frame.columns]
    if missing:
        raise DataError(f"--input {args.input}: column(s) {', '.join(missing)} of the reference are missing")
    with console.status(f"comparing {len(frame):,} rows against the reference of run {run.name}"):
        report = compare(sketch, frame, config=cfg)
    out = Path(args.output) if args.output else run / "monitor" / f"drift-{Path(args.input).stem}.json"
    write_json(out, {"run_id": manifest["run_id"], "input": str(Path(args.input).resolve()), "rows": int(len(frame)),
                     **report.to_dict()})
    table = report.to_frame()
    if "feature" not in table.columns:
        table = table.reset_index().rename(columns={"index": "feature"})
    if not console.quiet():
        from rich.console import Console
        from rich.table import Table

        shown = table.sort_values(["drifted", "statistic"], ascending=[False, False]).head(args.top)
        t = Table(title=f"drift of {Path(args.input).name} against run {run.name}")
        cols = [c for c in ("feature", "kind", "drifted", "method", "statistic", "threshold", "psi", "missing_change")
                if c in shown.columns]
        for c in cols:
            t.add_column(c)
        for _, r in shown.iterrows():
            t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in (r[c] for c in cols)])
        Console().print(t)
    drifted = list(report.drifted_features)
    console.out(f"monitor: {'DRIFT' if report.drifted else 'no drift'}: {len(drifted)} of "
                f"{len(sketch.numeric) + len(sketch.categorical)} features drifted"
                + (f" ({', '.join(drifted[:8])}{', ...' if len(drifted) > 8 else ''})" if drifted else ""))
    console.out(f"  report: {out}")
    return 4 if (report.drifted and args.fail_on_drift) else 0
