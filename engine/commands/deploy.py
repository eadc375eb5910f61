"""``trident deploy [MODEL] [VERSION]``: export a registered model (default: its ``challenger``), load it
beside the served version, gate it (parity, malformed requests, load test) and promote it.

``--run RUN_ID`` deploys the packaged model of a run folder instead. A failing gate leaves the served
version untouched and exits with code 3.
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    _options(p)
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="MODEL [VERSION] [KEY=VALUE ...]",
                   help="registered model name, version number or alias (default: deploy.candidate_alias), "
                        "then Hydra overrides such as deploy.load_test.p99_ms=[5]")


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", default=None, help="deploy the packaged model of this run (id or folder)")
    p.add_argument("--repository", default=None, help="model repository (default deploy.export.repository)")
    p.add_argument("--data", default=None, help="held-out rows for the gates (CSV/Parquet; default: the run's)")
    p.add_argument("--reason", default="", help="why (kept in the deployment record)")


def main(args: argparse.Namespace) -> int:
    from engine import console
    from engine.errors import TridentError
    from engine.serve.deploy import deploy, resolve_source
    from engine.serve.settings import load_config, parse_rest, split_positionals

    plain, overrides = split_positionals(parse_rest(args, _options))
    if len(plain) > 2:
        raise TridentError(f"deploy takes at most MODEL and VERSION, got {plain}")
    cfg = load_config(overrides, args.repository)
    if args.data:
        cfg.deploy.data = args.data
    model = plain[0] if plain else None
    version = plain[1] if len(plain) > 1 else None
    source = resolve_source(cfg, model=model, version=version, run=args.run)
    server_overrides = [o for o in overrides if o.startswith("deploy.server.")]
    record = deploy(cfg, source, reason=args.reason, overrides=server_overrides)
    for g, rec in record["gates"].items():
        console.out(f"  gate {g:<12} {'passed' if rec.get('passed') else rec.get('reason') or 'failed'}")
    load = record["gates"].get("load_test", {})
    for run in load.get("runs", []):
        what = f"closed c={run['concurrency']}" if run["mode"] == "closed" else f"open {run['rate']:g}/s"
        console.out(f"    {what:<14} p50 {run['p50_ms']:.2f} ms  p99 {run['p99_ms']:.2f} ms  "
                    f"{run['throughput']:.0f} req/s  errors {run['error_rate']:.1%}")
    console.out(f"deployed {record['model']} version {record['version']} (was {record['previous_version']}), "
                f"switch {record['switch_seconds']:.2f} s; serving at {record['server']['grpc_url']} (gRPC)")
    return 0
