"""``trident rollback [MODEL] [--to VERSION] --reason TEXT``: serve an earlier version again, at once and
after restarts, move the ``champion`` alias, and record when and why."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    _options(p)
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="[MODEL] [KEY=VALUE ...]",
                   help="served model name (default: the only one), then Hydra overrides")


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", type=int, default=None, help="version to serve (default: the one served before)")
    p.add_argument("--reason", default="", help="why (kept in the record and the served history)")
    p.add_argument("--repository", default=None, help="model repository (default deploy.export.repository)")


def main(args: argparse.Namespace) -> int:
    from engine import console
    from engine.errors import TridentError
    from engine.serve.deploy import rollback
    from engine.serve.settings import load_config, parse_rest, split_positionals

    plain, overrides = split_positionals(parse_rest(args, _options))
    if len(plain) > 1:
        raise TridentError(f"rollback takes at most one MODEL, got {plain}")
    cfg = load_config(overrides, args.repository)
    rec = rollback(cfg, plain[0] if plain else None, to=args.to, reason=args.reason)
    took = f" in {rec['switch_seconds']:.2f} s" if rec.get("switch_seconds") is not None else ""
    console.out(f"rolled back {rec['model']} from version {rec['from_version']} to {rec['version']}{took}"
                + (f" ({rec['note']})" if rec.get("note") else ""))
    return 0
