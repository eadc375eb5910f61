"""MLflow model registry: log a packaged model folder to a run, register a version, move aliases, resolve
``models:/`` URIs back to a local folder.

The model travels as the packaged folder itself (docs/model-format.md), logged under the run's
``model/`` artifact path; the registered version's source is ``runs:/<mlflow run>/model``. Stages only
ever set ``challenger``: ``champion`` moves through deployment.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import TridentError

ARTIFACT_PATH = "model"
CARD_ARTIFACT_PATH = "model_card"
CHALLENGER = "challenger"
CHAMPION = "champion"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?$")


class RegistryError(TridentError):
    """A registered model, version or alias does not exist, or the registry cannot be reached."""


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``models:/name@alias`` or ``models:/name/version``."""

    name: str
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, uri: str) -> "ModelRef":
        m = _MODELS_URI.match(uri.strip())
        if not m:
            raise RegistryError(f"cannot read model URI {uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
        return cls(m.group("name"), m.group("alias"), m.group("version"))

    def __str__(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.alias else f"models:/{self.name}/{self.version}"


def default_tracking_uri(uri: str | None = None) -> str:
    """``uri``, else $MLFLOW_TRACKING_URI, else ``sqlite:///<cwd>/mlflow.db`` (the tracking default)."""
    if uri:
        return str(uri)
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    from engine.registry.tracking import tracking_uri

    return tracking_uri(None)


def client(tracking_uri: str | None = None) -> Any:
    import logging
    import warnings

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mlflow import MlflowClient

    uri = default_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _not_found(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "") or ""
    return "RESOURCE_DOES_NOT_EXIST" in str(code) or "not found" in str(exc).lower() \
        or "does not exist" in str(exc).lower()


def register_folder(model_dir: str | os.PathLike, *, name: str, mlflow_run_id: str, tracking_uri: str | None = None,
                    tags: dict[str, str] | None = None, card_files: list[str | os.PathLike] = (),
                    alias: str = CHALLENGER, description: str | None = None) -> dict[str, Any]:
    """Log ``model_dir`` (and the model card files) to the MLflow run and register a new version.

    Returns
    -------
    dict
        ``{"name", "version", "alias", "source", "tracking_uri", "mlflow_run_id"}``.

    Raises
    ------
    RegistryError
        ``alias`` is ``champion`` (only deployment moves it) or MLflow refuses the registration.
    """
    if alias == CHAMPION:
        raise RegistryError("registration never sets the 'champion' alias; deployment moves it")
    c = client(tracking_uri)
    try:
        c.log_artifacts(mlflow_run_id, str(model_dir), artifact_path=ARTIFACT_PATH)
        for f in card_files:
            c.log_artifact(mlflow_run_id, str(f), artifact_path=CARD_ARTIFACT_PATH)
        try:
            c.get_registered_model(name)
        except Exception as exc:
            if not _not_found(exc):
                raise
            try:
                c.create_registered_model(name, description="Registered by Trident")
            except Exception as exc2:  # created meanwhile by a concurrent run
                if "ALREADY_EXISTS" not in str(getattr(exc2, "error_code", "")) and \
                        "already exists" not in str(exc2).lower():
                    raise
        source = f"runs:/{mlflow_run_id}/{ARTIFACT_PATH}"
        mv = c.create_model_version(name, source=source, run_id=mlflow_run_id, tags=dict(tags or {}),
                                    description=description)
        c.set_registered_model_alias(name, alias, mv.version)
    except RegistryError:
        raise
    except Exception as exc:
        raise RegistryError(f"MLflow registration of {name!r} failed: {exc}") from exc
    return {"name": name, "version": str(mv.version), "alias": alias, "source": source,
            "tracking_uri": default_tracking_uri(tracking_uri), "mlflow_run_id": mlflow_run_id}


def resolve(ref: ModelRef, tracking_uri: str | None = None) -> Any:
    """The MLflow ModelVersion that ``ref`` points at.

    Raises
    ------
    RegistryError
        Unknown model name, alias or version (the message lists what exists).
    """
    c = client(tracking_uri)
    try:
        c.get_registered_model(ref.name)
    except Exception as exc:
        if _not_found(exc):
            raise RegistryError(f"no registered model {ref.name!r} in {default_tracking_uri(tracking_uri)}") from None
        raise RegistryError(f"cannot reach the model registry: {exc}") from exc
    try:
        if ref.alias is not None:
            return c.get_model_version_by_alias(ref.name, ref.alias)
        return c.get_model_version(ref.name, ref.version)
    except Exception as exc:
        if not _not_found(exc) and "alias" not in str(exc).lower():
            raise RegistryError(f"cannot resolve {ref}: {exc}") from exc
        rm = c.get_registered_model(ref.name)
        if ref.alias is not None:
            known = ", ".join(f"{a}->v{v}" for a, v in sorted((rm.aliases or {}).items())) or "none"
            raise RegistryError(f"registered model {ref.name!r} has no alias {ref.alias!r} "
                                f"(aliases: {known})") from None
        versions = sorted(int(v.version) for v in c.search_model_versions(f"name='{ref.name}'"))
        raise RegistryError(f"registered model {ref.name!r} has no version {ref.version} "
                            f"(versions: {', '.join(map(str, versions)) or 'none'})") from None


def download(ref: ModelRef, cache_dir: str | os.PathLike, tracking_uri: str | None = None) -> tuple[Path, Any]:
    """Download the model folder of ``ref`` into ``cache_dir/<store>/<name>/<version>`` (reused when
    present; ``<store>`` is a digest of the tracking URI); returns (folder, ModelVersion)."""
    import hashlib

    mv = resolve(ref, tracking_uri)
    store = hashlib.sha256(default_tracking_uri(tracking_uri).encode()).hexdigest()[:12]
    dest = Path(cache_dir) / store / _safe(ref.name) / str(mv.version)
    if (dest / "model.json").is_file():
        return dest, mv
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-download-", dir=dest.parent))
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mlflow

        local = mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(tmp),
                                                    tracking_uri=default_tracking_uri(tracking_uri))
        local = Path(local)
        if not (local / "model.json").is_file():
            raise RegistryError(f"{ref} (version {mv.version}, source {mv.source}) holds no model.json: not a "
                                f"Trident model folder")
        if (dest / "model.json").is_file():  # downloaded meanwhile by another process
            return dest, mv
        if dest.exists():
            shutil.rmtree(dest)
        try:
            os.replace(local, dest)
        except OSError:
            if not (dest / "model.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest, mv


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
