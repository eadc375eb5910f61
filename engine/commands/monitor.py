"""``trident monitor RUN [monitor.KEY=VALUE ...] --input FILE``: drift of new data against the run's reference sketch.

Every numeric feature gets PSI, Jensen-Shannon, Wasserstein (binned), KS, mean/std shift and the
missing-rate change; every categorical PSI and a two-sample chi-square test, new and vanished
categories; plus the correlation shift and an overall verdict from the thresholds in ``conf/monitor``
(as recorded with the run; ``monitor.*`` overrides change them). The input is streamed in chunks of
``--chunk-rows`` rows (only the reference's columns are read), so it may be larger than memory. The
report is printed and written as JSON (atomically).
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
    p.add_argument("--chunk-rows", type=int, default=1_000_000,
                   help="rows read at a time: the input is streamed, so it may be larger than memory (default 1000000)")
    p.add_argument("overrides", nargs="*", metavar="monitor.KEY=VALUE", help="threshold overrides")


def _stream(path: str, sketch: Any, chunk_rows: int) -> Any:
    """The sketch's columns of ``path`` in frames of ``chunk_rows`` rows, with a progress bar: a CSV's
    numeric columns read as float64 and the categoricals whose reference categories are strings as
    strings (codes such as "007" keep their zeros; every block gets the same types)."""
    import pyarrow as pa

    from engine import console
    from engine.data.ingest import iter_frames

    p = Path(path)
    if not p.exists():
        raise DataError(f"--input {path}: no such file or folder")
    if chunk_rows < 1:
        raise DataError(f"--chunk-rows: expected at least 1, got {chunk_rows}")
    columns = list(sketch.numeric) + list(sketch.categorical)
    types = {c: pa.float64() for c in sketch.numeric}
    types.update({c: pa.string() for c in sketch.categorical if all(isinstance(v, str) for v in sketch.categories[c])})
    try:
        frames = iter_frames(p, columns, types, batch_rows=chunk_rows)
    except DataError as exc:
        raise DataError(f"--input {path}: {exc}") from exc
    return console.track(frames, f"comparing {p.name} in chunks of {chunk_rows:,} rows")


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
    report = compare(sketch, _stream(args.input, sketch, int(args.chunk_rows)), config=cfg)
    out = Path(args.output) if args.output else run / "monitor" / f"drift-{Path(args.input).stem}.json"
    write_json(out, {"run_id": manifest["run_id"], "input": str(Path(args.input).resolve()),
                     "rows": int(report.n_rows_current), **report.to_dict()})
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
