"""Compose and validate configs with Hydra's compose API; expand ``-m`` sweeps."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

_REGISTERED = False


def conf_dir() -> Path:
    """The folder holding config.yaml and the groups: ``$TRIDENT_CONF`` or the project's conf/."""
    env = os.environ.get("TRIDENT_CONF")
    if env:
        return Path(env).resolve()
    return (Path(__file__).resolve().parents[2] / "conf").resolve()


def register_configs() -> None:
    """Register the structured schemas with Hydra's ConfigStore (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from hydra.core.config_store import ConfigStore

    from engine.config.schema import Config

    ConfigStore.instance().store(name="config_schema", node=Config)
    _REGISTERED = True


def _first_line(msg: str) -> str:
    return msg.strip().splitlines()[0].strip() if msg.strip() else msg


def _format(exc: BaseException) -> str:
    """Turn a Hydra / OmegaConf exception chain into one line naming the key and what is allowed."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        if isinstance(e, MissingConfigException):
            text = str(e)
            m = re.search(r"Could not find '([^']+)'", text)
            opts = re.findall(r"^\t(\S+)$", text, flags=re.M)
            if m:
                missing = m.group(1)
                group = missing.rsplit("/", 1)[0] if "/" in missing else missing
                name = missing.rsplit("/", 1)[-1]
                allowed = ", ".join(opts) if opts else "see conf/" + group
                return f"{group}={name}: no such option in config group '{group}'; available: {allowed}"
            return _first_line(text)
    for e in chain:
        if isinstance(e, OmegaConfBaseException):
            key = getattr(e, "full_key", None)
            msg = getattr(e, "msg", None) or str(e)
            msg = _first_line(msg)
            m = re.match(r"Key '([^']+)' not in '(\w+)'", msg)
            if m:
                parent = key.rsplit(".", 1)[0] if key and "." in key else ""
                where = f"'{parent}'" if parent else "the top level"
                return f"unknown config key '{key}': no key '{m.group(1)}' in {where} ({m.group(2)})"
            if key:
                return f"config key '{key}': {msg}"
            return msg
    text = _first_line(str(exc))
    return text


def compose(overrides: list[str] | tuple[str, ...] = (), config_name: str = "config") -> Any:
    """Compose the run config from conf/ plus Hydra overrides.

    Raises
    ------
    ConfigError
        With one line naming the wrong key, option or value and what is allowed.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
    except ConfigError:
        raise
    except Exception as exc:  # Hydra and OmegaConf raise many types; all mean "bad config"
        raise ConfigError(_format(exc)) from exc
    finally:
        GlobalHydra.instance().clear()
    from omegaconf import OmegaConf

    OmegaConf.set_readonly(cfg, False)
    return cfg


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """Expand Hydra sweep syntax (``model=a,b data.rows=10,20``) into one override list per job."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as exc:
        raise ConfigError(_format(exc)) from exc
    batches = BasicSweeper.split_arguments(parsed, None)
    return [job for batch in batches for job in batch]


def to_container(cfg: Any) -> dict:
    """The resolved config as plain JSON-able data (enums as their names)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
