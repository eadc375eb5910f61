"""``trident predict --input in.csv --output out.csv``: score a CSV/Parquet file through the served model.

The output holds the input's columns plus ``score`` and ``label``; it is written atomically (CSV or
Parquet by its extension). The input is read, scored and written ``--chunk-rows`` rows at a time, so
it may be larger than memory.
"""
from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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
    p.add_argument("--chunk-rows", type=int, default=500_000,
                   help="rows read, scored and written at a time (default 500000): the file may be larger than memory")


def _chunks(path: Path, chunk_rows: int, model_columns: list[dict[str, str]]) -> Any:
    """The input's rows, ``chunk_rows`` at a time (pandas frames), with a progress bar. In a CSV the
    model's categorical and date columns read as text in every chunk alike (codes such as "007" keep
    their zeros); the other columns' types are inferred (numbers stay as written in the output)."""
    import pyarrow as pa

    from engine import console
    from engine.data.ingest import csv_header, iter_frames
    from engine.errors import DataError

    types = {}
    if path.suffix.lower() not in (".parquet", ".pq"):
        header = set(csv_header(path))
        types = {c["name"]: pa.string() for c in model_columns if c["kind"] != "numeric" and c["name"] in header}
    try:
        frames = iter_frames(path, types=types, batch_rows=chunk_rows)
    except DataError as exc:
        raise DataError(f"--input {path}: {exc}") from exc
    return console.track(frames, f"scoring {path.name} in chunks of {chunk_rows:,} rows")


def _write_scored(dest: Path, scored: Iterator[Any]) -> int:
    """Write the scored chunks to ``dest`` (CSV, or Parquet by its extension) atomically; the row count."""
    from engine import atomic
    from engine.errors import DataError

    rows = 0

    def csv(tmp: Path) -> None:
        nonlocal rows
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            for i, part in enumerate(scored):
                part.to_csv(fh, index=False, header=i == 0)
                rows += len(part)

    def parquet(tmp: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        nonlocal rows
        writer = None
        try:
            for part in scored:
                table = pa.Table.from_pandas(part, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                elif table.schema != writer.schema:
                    try:  # a CSV block can read a column with another type than the first block did
                        table = table.cast(writer.schema)
                    except (pa.ArrowException, ValueError) as exc:
                        raise DataError(f"--output {dest}: the rows from row {rows:,} on do not fit the column types of "
                                        f"the first rows ({str(exc).splitlines()[0]}); write CSV, or use a larger "
                                        "--chunk-rows") from exc
                writer.write_table(table)
                rows += len(part)
        finally:
            if writer is not None:
                writer.close()

    atomic.atomic_write(dest, parquet if dest.suffix.lower() in (".parquet", ".pq") else csv)
    return rows


def main(args: argparse.Namespace) -> int:
    from engine import console
    from engine.errors import DataError, TridentError
    from engine.serve.client import PipelineClient
    from engine.serve.settings import load_config, parse_rest, split_positionals

    plain, overrides = split_positionals(parse_rest(args, _options))
    if plain:
        raise TridentError(f"predict takes no positional arguments, got {plain}")
    if not args.input or not args.output:
        raise TridentError("predict needs --input FILE and --output FILE")
    cfg = load_config(overrides, args.repository)
    source = Path(args.input)
    if not source.is_file():
        raise DataError(f"--input {source}: no such file")
    if int(args.chunk_rows) < 1:
        raise DataError(f"--chunk-rows: expected at least 1, got {args.chunk_rows}")
    if args.url:
        if not args.model:
            raise TridentError("--url needs --model (the served model's name)")
        client = PipelineClient(args.url, args.model, version=args.version)
    else:
        client = PipelineClient.for_repository(Path(str(cfg.deploy.export.repository)).resolve(), args.model,
                                               version=args.version)

    def scored() -> Iterator[Any]:
        for frame in _chunks(source, int(args.chunk_rows), client.schema.columns):
            pred = client.predict(frame, batch_size=args.batch_size)
            frame["score"] = pred["score"].to_numpy()
            frame["label"] = pred["label"].to_numpy()
            yield frame

    dest = Path(args.output)
    with client:
        rows = _write_scored(dest, scored())
    console.out(f"scored {rows} rows through {client.model} at {client.url}: {dest}")
    return 0
