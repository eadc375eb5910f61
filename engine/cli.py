"""``trident``: the command line. Each command lives in its own module, imported only when used.

Errors a user can fix print one line (``trident: error: ...``) and exit non-zero; ``--verbose`` (or
``HYDRA_FULL_ERROR=1``) adds the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

#: command -> (module, one-line help). Each module has ``add_arguments(parser)`` and ``main(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("engine.commands.run", "run the pipeline (Hydra overrides after the command; -m for a sweep)"),
    "reproduce": ("engine.commands.reproduce", "re-run a recorded run and compare every output hash and metric"),
    "serve": ("engine.commands.serve", "start (or adopt) the Triton server on the model repository and keep it healthy"),
    "deploy": ("engine.commands.deploy", "export a registered model, load it, gate it (parity, malformed input, load), promote"),
    "rollback": ("engine.commands.rollback", "switch serving back to an earlier version, persist it, record why"),
    "predict": ("engine.commands.predict", "score a CSV/Parquet file through the served model"),
    "monitor": ("engine.commands.monitor", "drift of new data against a run's reference sketch"),
}

EPILOG = """examples:
  trident run                                   # default synthetic credit data
  trident run data.rows=5000 backend=cpu
  trident run data=csv data.path=../shared/data/credit_data.csv data.target=Status
  trident run -m data.rows=2000,4000            # a sweep: one run per value
  trident reproduce RUN_ID
"""


def _add_common(p: argparse.ArgumentParser, sub: bool = False) -> None:
    # On a sub-command the flags must not reset what was given before the command (trident -q run).
    extra = {"default": argparse.SUPPRESS} if sub else {}
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks", **extra)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines", **extra)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (so ``trident --help`` stays instant)."""
    parser = argparse.ArgumentParser(
        prog="trident",
        description="Trident: GPU-accelerated ML pipelines from data to a governed, served model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        _add_common(p, sub=True)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    verbose = bool(args.verbose or os.environ.get("HYDRA_FULL_ERROR") == "1")
    from engine import console
    from engine.errors import TridentError

    console.setup(quiet=args.quiet, verbose=verbose)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.main(args) or 0)
    except TridentError as exc:
        if verbose:
            raise
        print(f"trident: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("trident: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal failure: one line unless verbose
        if verbose:
            raise
        print(f"trident: internal error: {type(exc).__name__}: {exc} (run with --verbose for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
