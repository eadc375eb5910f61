"""Logging and progress bars for the command line (rich), silenced by ``--quiet``."""
from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_QUIET = False
_VERBOSE = False
LOG = logging.getLogger("trident")


def setup(quiet: bool = False, verbose: bool = False) -> None:
    """Configure the ``trident`` logger once for a command-line invocation."""
    global _QUIET, _VERBOSE
    _QUIET, _VERBOSE = quiet, verbose
    for h in list(LOG.handlers):
        LOG.removeHandler(h)
    LOG.propagate = False
    if quiet:
        LOG.setLevel(logging.WARNING)
        LOG.addHandler(logging.NullHandler())
        return
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False, markup=False,
                          rich_tracebacks=verbose)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("mlflow", "alembic", "distributed", "numba", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.ERROR if not verbose else logging.INFO)


def quiet() -> bool:
    return _QUIET


def verbose() -> bool:
    return _VERBOSE


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on stderr (none when quiet or not a terminal)."""
    if _QUIET or not sys.stderr.isatty():
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, total=total, transient=True,
                          console=_console())


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner while a long step runs (only on a terminal, never when quiet)."""
    if _QUIET or not sys.stderr.isatty():
        yield
        return
    with _console().status(message):
        yield


def out(message: str) -> None:
    """Print a result line on stdout (suppressed by ``--quiet``)."""
    if not _QUIET:
        print(message, flush=True)
