"""Logging and progress bars for the command line (rich), silenced by ``--quiet``."""
from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_QUIET = False
_VERBOSE = False
LOG = logging.getLogger("trident")
_CONSOLE: Any = None
#: The run's progress display (one live display at a time: stage bars and inner bars share it).
_PROGRESS: Any = None


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

    global _CONSOLE
    _CONSOLE = Console(stderr=True)
    handler = RichHandler(console=_CONSOLE, show_path=False, show_time=False, markup=False,
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


def _live() -> bool:
    return not _QUIET and sys.stderr.isatty()


@contextlib.contextmanager
def progress_session(total: int, description: str) -> Iterator[Callable[[str], None]]:
    """A progress bar over ``total`` steps (the run's stages); yields ``advance(next_description)``.

    Bars opened by :func:`track` while it is active appear beneath it in the same live display.
    """
    global _PROGRESS
    if not _live() or _PROGRESS is not None:
        yield lambda _desc: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=_console(), transient=True) as progress:
        task = progress.add_task(description, total=total)
        _PROGRESS = progress

        def advance(desc: str) -> None:
            progress.update(task, advance=1, description=desc, refresh=True)

        try:
            yield advance
        finally:
            _PROGRESS = None


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on stderr (none when quiet or not a terminal)."""
    if not _live():
        yield from items
        return
    if _PROGRESS is not None:
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        task = _PROGRESS.add_task(description, total=total)
        try:
            for item in items:
                yield item
                _PROGRESS.advance(task)
        finally:
            _PROGRESS.remove_task(task)
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, total=total, transient=True,
                          console=_console())


def _console() -> Any:
    global _CONSOLE
    if _CONSOLE is None:
        from rich.console import Console

        _CONSOLE = Console(stderr=True)
    return _CONSOLE


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner while a long step runs (only on a terminal, never when quiet)."""
    if not _live():
        yield
        return
    if _PROGRESS is not None:  # inside the run's display: a row without a bar
        task = _PROGRESS.add_task(message, total=None)
        try:
            yield
        finally:
            _PROGRESS.remove_task(task)
        return
    with _console().status(message):
        yield


def out(message: str) -> None:
    """Print a result line on stdout (suppressed by ``--quiet``)."""
    if not _QUIET:
        print(message, flush=True)
