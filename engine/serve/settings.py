"""The config of the serving commands: Hydra overrides (``deploy.server.grpc_port=8001``) plus flags."""
from __future__ import annotations

from typing import Any


def split_positionals(values: list[str]) -> tuple[list[str], list[str]]:
    """``(plain arguments, Hydra overrides)``: an override is a ``KEY=VALUE`` word."""
    plain = [v for v in values if "=" not in v]
    overrides = [v for v in values if "=" in v]
    return plain, overrides


def load_config(overrides: list[str], repository: str | None = None, **server: Any) -> Any:
    """Compose the config with ``overrides``; ``repository`` and non-None ``server`` keys win."""
    from engine.config import compose

    cfg = compose(list(overrides))
    if repository:
        cfg.deploy.export.repository = str(repository)
    for key, value in server.items():
        if value is not None:
            setattr(cfg.deploy.server, key, value)
    return cfg


def parse_rest(args: Any, add_options: Any) -> list[str]:
    """Options given after the first positional word (``trident deploy NAME --reason R key=v``) are read
    from ``args.args`` into ``args``; returns the remaining words (names and ``KEY=VALUE`` overrides).

    Raises
    ------
    TridentError
        An unknown option.
    """
    import argparse

    from engine.errors import TridentError

    extra = argparse.ArgumentParser(add_help=False)
    add_options(extra)
    extra.add_argument("-v", "--verbose", action="store_true")
    extra.add_argument("-q", "--quiet", action="store_true")
    _, rest = extra.parse_known_args(list(getattr(args, "args", []) or []), namespace=args)
    unknown = [w for w in rest if w.startswith("-") and "=" not in w]
    if unknown:
        raise TridentError(f"unknown option(s) {' '.join(unknown)}")
    return rest
