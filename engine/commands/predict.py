"""``trident predict --input in.csv --output out.csv``: score a CSV/Parquet file through the served model.

The output holds the input's columns plus ``score`` and ``label``; it is written atomically (CSV or
Parquet by its extension).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    _options(p)
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="KEY=VALUE", help="Hydra overrides")


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", default=None, help="CSV or Parquet file with the model's raw input columns")
    p.add_argument("--output", default=None, help="CSV or Parquet file to write")
    p.add_argument("--model", default=None, help="served model (default: the only one served)")
    p.add_argument("--version", type=int, default=None, help="a specific version (default: the served one)")
    p.add_argument("--url", default=None, help="Triton gRPC host:port (default: the server of the repository)")
    p.add_argument("--repository", default=None, help="model repository (default deploy.export.repository)")
    p.add_argument("--batch-size", type=int, default=None, help="rows per request (default: max_batch_size)")


def _read(path: Path):
    import pandas as pd

    from engine.errors import DataError

    if not path.is_file():
        raise DataError(f"--input {path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def main(args: argparse.Namespace) -> int:
    from engine import atomic, console
    from engine.errors import TridentError
    from engine.serve.client import PipelineClient
    from engine.serve.settings import load_config, parse_rest, split_positionals

    plain, overrides = split_positionals(parse_rest(args, _options))
    if plain:
        raise TridentError(f"predict takes no positional arguments, got {plain}")
    if not args.input or not args.output:
        raise TridentError("predict needs --input FILE and --output FILE")
    cfg = load_config(overrides, args.repository)
    frame = _read(Path(args.input))
    if args.url:
        if not args.model:
            raise TridentError("--url needs --model (the served model's name)")
        client = PipelineClient(args.url, args.model, version=args.version)
    else:
        client = PipelineClient.for_repository(Path(str(cfg.deploy.export.repository)).resolve(), args.model,
                                               version=args.version)
    with client:
        pred = client.predict(frame, batch_size=args.batch_size)
    out = frame.copy()
    out["score"] = pred["score"].to_numpy()
    out["label"] = pred["label"].to_numpy()
    dest = Path(args.output)
    if dest.suffix.lower() in (".parquet", ".pq"):
        atomic.atomic_write(dest, lambda p: out.to_parquet(p, index=False))
    else:
        atomic.atomic_write(dest, lambda p: out.to_csv(p, index=False))
    console.out(f"scored {len(out)} rows through {client.model} at {client.url}: {dest}")
    return 0
