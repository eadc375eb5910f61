"""Packaged model folder -> ``<repository>/<name>/<version>/`` of a Triton model repository.

A version folder holds the packaged model as is (model.json, model.onnx, features/), the runtime
modules (``pipeline_runtime.py``, ``features_runtime.py``, ``triton_io.py``), the thin ``model.py``
copied from ``triton_models/templates/`` and ``sample.json`` (held-out raw rows: parity, probes,
gates). ``<name>/config.pbtxt`` is generated (engine.export.triton_config). Before a version folder
appears under its final name, its own runtime, run in the serving environment, must reproduce the
source folder's predictions on the sample rows (:func:`check_parity`).

Example
-------
>>> from engine.export.triton_repo import export_model                       # doctest: +SKIP
>>> export_model("runs/RUN/model", "triton_models", 1, cfg.deploy.export,    # doctest: +SKIP
...              env_path=".venv-triton", sample=held_out_frame)
"""
from __future__ import annotations

import inspect
import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine import atomic
from engine.errors import GateFailed, TridentError
from engine.export import triton_config as tc

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = PROJECT_ROOT / "triton_models" / "templates"
CONFIG = "config.pbtxt"
SAMPLE = "sample.json"
#: Template -> file name in the version folder, per model role.
MODEL_TEMPLATES = {"pipeline": "model.py", "features": "features_model.py", "estimator": "estimator_model.py"}


class ExportError(TridentError):
    """The packaged model cannot be exported (bad folder, name, version clash, signature change)."""


@dataclass
class ExportResult:
    """What :func:`export_model` wrote."""

    name: str
    version: int
    layout: str
    repository: Path
    models: list[str]
    folders: list[Path]
    model_sha256: str
    parity: dict[str, Any] = field(default_factory=dict)
    reused: bool = False

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "layout": self.layout,
                "repository": str(self.repository), "models": self.models,
                "folders": [str(f) for f in self.folders], "model_sha256": self.model_sha256,
                "parity": self.parity, "reused": self.reused}


# ---- repository helpers ------------------------------------------------------------------------
def config_path(repository: str | os.PathLike, name: str) -> Path:
    return Path(repository) / name / CONFIG


def read_config(repository: str | os.PathLike, name: str) -> Any | None:
    p = config_path(repository, name)
    return tc.from_pbtxt(p.read_text(encoding="utf-8")) if p.is_file() else None


def write_config(repository: str | os.PathLike, name: str, cfg: Any) -> Path:
    """Write ``<repository>/<name>/config.pbtxt`` atomically."""
    return atomic.write_text(config_path(repository, name), tc.to_pbtxt(cfg))


def version_folders(repository: str | os.PathLike, name: str) -> list[int]:
    """Versions present on disk for ``name`` (numeric sub-folders)."""
    d = Path(repository) / name
    if not d.is_dir():
        return []
    return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit())


def model_names(repository: str | os.PathLike, name: str) -> list[str]:
    """The Triton models behind the served pipeline ``name`` (ensemble steps first, ``name`` last)."""
    cfg = read_config(repository, name)
    if cfg is None:
        return [name]
    return [s.model_name for s in cfg.ensemble_scheduling.step] + [name]


def clean_pycache(folder: str | os.PathLike) -> None:
    """Remove ``__pycache__`` folders the python-backend stub may have written."""
    for p in sorted(Path(folder).rglob("__pycache__"), reverse=True):
        shutil.rmtree(p, ignore_errors=True)


def remove_model(repository: str | os.PathLike, name: str) -> None:
    """Delete a model folder (and its ensemble steps) from the repository."""
    for m in model_names(repository, name):
        shutil.rmtree(Path(repository) / m, ignore_errors=True)


def next_version(repository: str | os.PathLike, name: str) -> int:
    existing = version_folders(repository, name)
    return (max(existing) + 1) if existing else 1


# ---- source and runtime files ----------------------------------------------------------------
def _runtime_sources() -> dict[str, Path]:
    """The runtime modules copied into every version folder (the very files the project imports)."""
    from engine.export import pipeline_runtime

    feature_module = inspect.getmodule(pipeline_runtime.FeatureRuntime)
    feature_file = inspect.getsourcefile(feature_module) if feature_module else None
    if not feature_file:
        raise ExportError("cannot locate the source of FeatureRuntime (engine/features/runtime.py)")
    return {"pipeline_runtime.py": Path(inspect.getsourcefile(pipeline_runtime)),
            "features_runtime.py": Path(feature_file),
            "triton_io.py": TEMPLATES / "triton_io.py"}


def read_meta(source: str | os.PathLike) -> dict[str, Any]:
    p = Path(source) / "model.json"
    if not p.is_file():
        raise ExportError(f"{source}: no model.json (not a packaged model folder, see docs/model-format.md)")
    return json.loads(p.read_text(encoding="utf-8"))


def _copy_tree(src: Path, dest: Path) -> None:
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if "__pycache__" in rel.parts or p.name.startswith(atomic.TMP_PREFIX) or p.name == SAMPLE:
            continue
        if p.is_dir():
            (dest / rel).mkdir(parents=True, exist_ok=True)
        elif p.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest / rel)


def _write_version(src: Path, dest: Path, role: str, sample: dict[str, Any]) -> None:
    _copy_tree(src, dest)
    for fname, path in _runtime_sources().items():
        shutil.copy2(path, dest / fname)
    shutil.copy2(TEMPLATES / MODEL_TEMPLATES[role], dest / "model.py")
    atomic.write_json(dest / SAMPLE, sample)


# ---- parity of the exported folder with its source ---------------------------------------------
def _env_python(env_path: str | os.PathLike | None) -> Path | None:
    if not env_path:
        return None
    p = Path(env_path) / "bin" / "python"
    return p if p.exists() else None


def _run_self_check(folder: Path, env_path: str | os.PathLike | None) -> dict[str, Any]:
    """Predict the folder's sample.json with the folder's own runtime, in the serving environment when
    there is one (an isolated interpreter: nothing of the project on its path)."""
    py = _env_python(env_path)
    if py is None:  # no serving venv (e.g. a production tritonserver): the project's runtime
        from engine.export.pipeline_runtime import PipelineRuntime
        from engine.serve.columns import from_json_rows

        rt = PipelineRuntime.load(str(folder))
        out = rt.predict(from_json_rows(json.loads((folder / SAMPLE).read_text(encoding="utf-8"))))
        return {"numpy": np.__version__, "score": out["score"].tolist(),
                "label": [x.item() if hasattr(x, "item") else x for x in out["label"]]}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([str(py), "-I", "-B", str(folder / "triton_io.py"), str(folder)], capture_output=True,
                          text=True, timeout=300, cwd=str(folder), env=env)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
        raise ExportError(f"the exported runtime does not load in the serving environment: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_parity(source: Path, folder: Path, env_path: str | os.PathLike | None, atol: float) -> dict[str, Any]:
    """Compare the exported folder's predictions with the source folder's on its sample rows.

    Raises
    ------
    GateFailed
        Naming the largest score difference and the first differing label.
    """
    from engine.export.pipeline_runtime import PipelineRuntime
    from engine.serve.columns import from_json_rows

    cols = from_json_rows(json.loads((folder / SAMPLE).read_text(encoding="utf-8")))
    expected = PipelineRuntime.load(str(source)).predict(cols)
    got = _run_self_check(folder, env_path)
    s_exp = np.asarray(expected["score"], dtype=np.float64)
    s_got = np.asarray(got["score"], dtype=np.float64)
    if s_exp.shape != s_got.shape:
        raise GateFailed(f"export parity: {s_got.shape[0]} scores from the exported folder, {s_exp.shape[0]} expected")
    diff = np.abs(s_exp - s_got)
    both_nan = np.isnan(s_exp) & np.isnan(s_got)
    diff[both_nan] = 0.0
    worst = float(np.nanmax(diff)) if diff.size else 0.0
    if np.isnan(diff).any():
        worst = float("inf")
    lab_exp = [x.item() if hasattr(x, "item") else x for x in expected["label"]]
    bad_labels = [i for i, (a, b) in enumerate(zip(lab_exp, got["label"])) if a != b]
    rec = {"rows": int(s_exp.shape[0]), "max_abs_score_diff": worst, "atol": float(atol),
           "label_mismatches": len(bad_labels), "serving_numpy": got.get("numpy")}
    if worst > atol:
        i = int(np.nanargmax(diff)) if not np.isinf(worst) else int(np.argmax(np.isnan(diff)))
        raise GateFailed(f"export parity: the exported folder's score differs by {worst:.3g} (row {i}: "
                         f"{s_got[i]!r} vs {s_exp[i]!r}), tolerance {atol:g}")
    if bad_labels:
        i = bad_labels[0]
        raise GateFailed(f"export parity: {len(bad_labels)} label(s) differ (row {i}: {got['label'][i]!r} vs "
                         f"{lab_exp[i]!r})")
    return rec


# ---- export ------------------------------------------------------------------------------------
def _same_signature(old: Any, new: Any) -> bool:
    return tc.parameter(old, tc.PARAM_SIGNATURE) == tc.parameter(new, tc.PARAM_SIGNATURE) and \
        tc.parameter(old, tc.PARAM_LAYOUT) == tc.parameter(new, tc.PARAM_LAYOUT)


def export_model(source: str | os.PathLike, repository: str | os.PathLike, version: int, export_cfg: Any,
                 sample: dict[str, Any], env_path: str | os.PathLike | None = None, name: str | None = None,
                 check: bool = True) -> ExportResult:
    """Write the packaged model ``source`` as version ``version`` of ``name`` in ``repository``.

    Parameters
    ----------
    source : path
        A packaged model folder (docs/model-format.md).
    repository : path
        The Triton model repository.
    version : int
        Version number (>= 1). An existing version folder with the same model.json is reused; one with
        a different model is an error.
    export_cfg : ExportConfig
        Layout, batching, instances, numeric type, parity tolerance.
    sample : dict
        Held-out raw rows as written by :func:`engine.serve.columns.to_json_rows`.
    env_path : path, optional
        The serving venv (``EXECUTION_ENV_PATH``; runs the parity check). None: the server's own Python.
    name : str, optional
        Served model name; default ``model.json``'s ``name``.
    check : bool
        Run :func:`check_parity` before the version folder is published.

    Returns
    -------
    ExportResult

    Raises
    ------
    ExportError
        Bad source, name, version clash, or a signature different from the versions already in the
        repository's config.
    GateFailed
        The exported folder does not reproduce the source's predictions.
    """
    from engine.export.pipeline_runtime import PipelineRuntime

    source = Path(source).resolve()
    repository = Path(repository).resolve()
    meta = read_meta(source)
    PipelineRuntime.load(str(source))  # format version and file hashes
    name = tc.check_model_name(name or str(meta.get("name") or "model"))
    version = int(version)
    if version < 1:
        raise ExportError(f"version {version}: Triton versions start at 1")
    layout = tc.resolve_layout(export_cfg.layout)
    env = str(Path(env_path).resolve()) if env_path else ""
    existing = read_config(repository, name)
    versions = tc.served_versions(existing) if existing is not None else [version]
    configs = tc.build_configs(name, meta, export_cfg, env, versions, layout)
    if existing is not None and not _same_signature(existing, configs[name]):
        raise ExportError(f"model {name!r} in {repository} serves versions {versions} with other input columns, "
                          f"types or layout; versions served side by side share one config: deploy under "
                          f"another name or remove {repository / name}")
    model_sha = atomic.sha256_file(source / "model.json")
    roles = {n: tc.parameter(c, tc.PARAM_ROLE) for n, c in configs.items()}
    folders: list[Path] = []
    reused = False
    parity: dict[str, Any] = {}
    for model, role in roles.items():
        final = repository / model / str(version)
        folders.append(final)
        if role == "ensemble":
            final.mkdir(parents=True, exist_ok=True)
            continue
        if final.exists():
            if (final / "model.json").is_file() and atomic.sha256_file(final / "model.json") == model_sha:
                reused = True
                continue
            raise ExportError(f"{final} already holds another model (model.json differs); versions are immutable: "
                              f"choose another version")
        stage = repository / model / f"{atomic.TMP_PREFIX}{version}-{secrets.token_hex(4)}"
        stage.mkdir(parents=True)
        try:
            _write_version(source, stage, role, sample)
            if check and role in ("pipeline", "features"):
                parity = check_parity(source, stage, env or None, float(export_cfg.parity_atol))
            os.replace(stage, final)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    for model, cfg in configs.items():
        if existing is None or not config_path(repository, model).is_file():
            write_config(repository, model, cfg)
    return ExportResult(name=name, version=version, layout=layout, repository=repository,
                        models=list(configs), folders=folders, model_sha256=model_sha, parity=parity,
                        reused=reused)


def stage_copy(repository: str | os.PathLike, name: str, version: int, new_name: str,
               export_cfg: Any | None = None) -> list[str]:
    """Copy version ``version`` of ``name`` (all its models) under ``new_name``, serving only that version.

    Used to load a candidate beside the served model without changing what unversioned requests get.
    Returns the model names to load (steps first).
    """
    repository = Path(repository)
    cfg = read_config(repository, name)
    if cfg is None:
        raise ExportError(f"{repository / name} has no {CONFIG}")
    steps = [s.model_name for s in cfg.ensemble_scheduling.step]
    step_map = {s: s.replace(name, new_name, 1) for s in steps}
    remove_model(repository, new_name)
    out: list[str] = []
    for old, new in [*step_map.items(), (name, new_name)]:
        src_cfg = read_config(repository, old)
        if src_cfg is None:
            raise ExportError(f"{repository / old} has no {CONFIG}")
        dest = repository / new
        src = repository / old / str(version)
        if not src.is_dir():
            raise ExportError(f"{src} does not exist")
        tmp = dest / f"{atomic.TMP_PREFIX}{version}"
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("__pycache__"))
        os.replace(tmp, dest / str(version))
        write_config(repository, new, tc.set_versions(tc.renamed(src_cfg, new, step_map), [version]))
        out.append(new)
    return out
