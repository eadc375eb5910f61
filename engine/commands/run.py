"""``trident run [overrides...] [-m]``: compose the config with Hydra and run the pipeline."""
from __future__ import annotations

import argparse
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--multirun", action="store_true",
                   help="sweep: run once per combination of comma-separated override values")
    p.add_argument("--run-id", default=None, help="use this run id instead of a generated one")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="Hydra overrides, e.g. data.rows=5000 backend=cpu data=csv data.path=F data.target=T")


def execute(overrides: list[str], run_id: str | None = None) -> Any:
    """Compose ``overrides`` and run the pipeline; return the finished RunContext."""
    from engine.config import compose
    from engine.pipeline import run_pipeline

    cfg = compose(overrides)
    return run_pipeline(cfg, overrides=overrides, run_id=run_id)


def summarise(ctx: Any) -> None:
    from engine import console

    m = ctx.manifest
    console.out(f"run {ctx.run_id}: {m['status']}" + (f" ({m.data.get('reason')})" if m.data.get("reason") else ""))
    console.out(f"  results: {ctx.run_dir}")
    for key in ("report_html", "model_card_html", "serving"):
        if key in ctx.state:
            console.out(f"  {key.replace('_', ' ')}: {ctx.state[key]}")
    if "serving" in ctx.state and ctx.cfg.deploy.get("keep_serving", True):
        console.out("  the server keeps running: `trident predict --input F --output F` scores a file; "
                    "`trident serve --stop` stops it")
    if m.data.get("mlflow"):
        console.out(f"  mlflow:  {m['mlflow']['tracking_uri']} (run {m['mlflow']['run_id']})")


def main(args: argparse.Namespace) -> int:
    from engine.config import compose, expand_sweep

    overrides = list(args.overrides)
    if not args.multirun:
        ctx = execute(overrides, run_id=args.run_id)
        summarise(ctx)
        return 0 if ctx.manifest["status"] in ("succeeded", "rejected") else 1
    jobs = expand_sweep(overrides)
    for job in jobs:  # validate every job's config before running any
        compose(job)
    from engine import console

    console.out(f"sweep: {len(jobs)} run(s)")
    worst = 0
    for i, job in enumerate(jobs):
        console.out(f"[{i + 1}/{len(jobs)}] {' '.join(job) or '(defaults)'}")
        ctx = execute(job)
        summarise(ctx)
        if ctx.manifest["status"] not in ("succeeded", "rejected"):
            worst = 1
    return worst
