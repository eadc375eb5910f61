"""``trident deploy``: export a packaged model to the Triton repository, gate it, and promote it.

1. Resolve the model: a registered version (``models:/NAME/VERSION`` or ``NAME@challenger``) or a run
   folder; the Triton version is the registered version number (a run folder: its registered version,
   else the next free number).
2. Export it to ``<repository>/<name>/<version>/`` (parity of the exported folder with its source).
3. Load it as ``<name>__candidate`` beside the served model: requests without a version keep getting
   the served version while the candidate is judged.
4. Gates, each recorded: parity with the embedded predictor, malformed requests, load test (SLOs).
5. All passed: the version becomes the served one (config.pbtxt + served.json, so a restart keeps it)
   and the ``champion`` alias moves to it. Otherwise the served version is untouched, the reason is
   printed and :class:`engine.errors.GateFailed` is raised.

Every deployment writes a record (``<records_dir>/<id>.json``, and ``runs/<run_id>/deployments/`` when
the run folder is there), adds its gates to the run manifest, and tags the MLflow model version.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import atomic, console
from engine.errors import GateFailed, TridentError
from engine.serve import state

LOG = console.LOG
GATES = ("parity", "integration", "load_test")


@dataclass
class ModelSource:
    """The packaged model to deploy and where it came from."""

    folder: Path
    name: str
    version: int
    registry: dict[str, Any] | None = None  # {"name", "version", "tracking_uri"}
    run_id: str | None = None
    run_dir: Path | None = None
    described: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def new_deployment_id() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def repository_of(cfg: Any) -> Path:
    return Path(str(cfg.deploy.export.repository)).expanduser().resolve()


def _tracking_uri(cfg: Any) -> str | None:
    tr = getattr(cfg, "tracking", None)
    return str(tr.uri) if tr is not None and getattr(tr, "uri", None) else None


# ---- the model to deploy ---------------------------------------------------------------------------
def _version_for_folder(repository: Path, name: str, folder: Path) -> int:
    """The version already holding this model.json in the repository, else the next free number."""
    from engine.export import triton_repo

    digest = atomic.sha256_file(folder / "model.json")
    for v in triton_repo.version_folders(repository, name):
        mj = repository / name / str(v) / "model.json"
        if mj.is_file() and atomic.sha256_file(mj) == digest:
            return v
    return triton_repo.next_version(repository, name)


def resolve_source(cfg: Any, model: str | None = None, version: str | None = None,
                   run: str | None = None) -> ModelSource:
    """The model to deploy: ``run`` (a run id or folder), else a registered model version or alias.

    Raises
    ------
    TridentError
        Unknown run, registered model, version or alias; a folder without a packaged model.
    """
    from engine.export.triton_repo import read_meta
    from engine.registry.manifest import MANIFEST

    runs_dir = Path(str(getattr(cfg, "runs_dir", "runs")))
    repository = repository_of(cfg)
    if run:
        p = Path(run)
        run_dir = p if p.is_dir() else runs_dir / run
        folder = run_dir / "model" if (run_dir / "model" / "model.json").is_file() else run_dir
        if not (folder / "model.json").is_file():
            raise TridentError(f"run {run}: no packaged model at {run_dir}/model (did the run reach the register "
                               f"stage?)")
        meta = read_meta(folder)
        name = model or str(meta.get("name") or "model")
        reg = None
        manifest = run_dir / MANIFEST
        if manifest.is_file():
            rec = json.loads(manifest.read_text(encoding="utf-8")).get("registered_model") or {}
            if rec.get("registered") and rec.get("version"):
                reg = {"name": rec["name"], "version": str(rec["version"]), "tracking_uri": rec.get("tracking_uri")}
        ver = int(version) if version else (int(reg["version"]) if reg and reg["name"] == name
                                            else _version_for_folder(repository, name, folder))
        recorded = run_dir.resolve() if (run_dir / MANIFEST).is_file() else None
        return ModelSource(folder=folder.resolve(), name=name, version=ver, registry=reg, run_id=meta.get("run_id"),
                           run_dir=recorded, described=f"run {run_dir.name}", meta=meta)
    from engine.predictor import cache_root
    from engine.registry.mlflow_registry import ModelRef, default_tracking_uri, download
    from engine.registry.package import registered_name

    name = model or (str(cfg.deploy.model_name) if cfg.deploy.model_name else registered_name(cfg))
    if version is None or str(version) == "":
        ref = ModelRef(name, alias=str(cfg.deploy.candidate_alias))
    elif str(version).isdigit():
        ref = ModelRef(name, version=str(int(version)))
    else:
        ref = ModelRef(name, alias=str(version).lstrip("@"))
    uri = _tracking_uri(cfg)
    folder, mv = download(ref, cache_root(), uri)
    meta = read_meta(folder)
    run_id = meta.get("run_id")
    run_dir = runs_dir / str(run_id) if run_id else None
    recorded = run_dir.resolve() if run_dir is not None and (run_dir / MANIFEST).is_file() else None
    return ModelSource(folder=Path(folder).resolve(), name=name, version=int(mv.version),
                       registry={"name": name, "version": str(mv.version), "tracking_uri": default_tracking_uri(uri)},
                       run_id=run_id, run_dir=recorded, described=str(ref), meta=meta)


# ---- held-out rows ---------------------------------------------------------------------------------
HELDOUT = "heldout.json"


def save_heldout(ctx: Any, rows: int = 2000) -> Path | None:
    """Write the run's held-out raw rows (test split, else validation) to ``deploy/heldout.json`` so that
    later deployments of this run's model have rows for their gates."""
    from engine.evaluate.stage import _frame_rows
    from engine.serve.columns import to_columns, to_json_rows

    frame = None
    for split in ("test", "valid"):
        frame = _frame_rows(ctx, split)
        if frame is not None and len(frame):
            break
    folder = ctx.state.get("model_dir")
    if frame is None or folder is None:
        return None
    from engine.export.triton_repo import read_meta

    specs = read_meta(folder)["input_columns"]
    data = to_json_rows(to_columns(frame.iloc[:rows], specs), specs)
    return ctx.write_json(f"deploy/{HELDOUT}", data)


def _frame_from_json(data: dict[str, Any]) -> Any:
    import pandas as pd

    from engine.serve.columns import from_json_rows

    return pd.DataFrame(from_json_rows(data))


def held_out(cfg: Any, source: ModelSource, ctx: Any = None) -> tuple[Any, str]:
    """Raw held-out rows for the gates and where they came from.

    In order: ``deploy.data``; the run's test (or validation) rows when called inside ``trident run``;
    the run folder's ``deploy/heldout.json``; the rows stored with the latest exported version of the
    same model.
    """
    import pandas as pd

    path = cfg.deploy.data
    if path:
        p = Path(str(path))
        if not p.is_file():
            raise TridentError(f"deploy.data={path}: no such file")
        frame = pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pd.read_csv(p)
        return frame, str(p)
    if ctx is not None:
        from engine.evaluate.stage import _frame_rows

        for split in ("test", "valid"):
            frame = _frame_rows(ctx, split)
            if frame is not None and len(frame):
                return frame.reset_index(drop=True), f"run {ctx.run_id} ({split} split)"
    if source.run_dir is not None and (source.run_dir / "deploy" / HELDOUT).is_file():
        p = source.run_dir / "deploy" / HELDOUT
        return _frame_from_json(json.loads(p.read_text(encoding="utf-8"))), str(p)
    from engine.export import triton_repo

    repo = repository_of(cfg)
    for v in reversed(triton_repo.version_folders(repo, source.name)):
        p = repo / triton_repo.model_names(repo, source.name)[0] / str(v) / triton_repo.SAMPLE
        if p.is_file():
            return _frame_from_json(json.loads(p.read_text(encoding="utf-8"))), str(p)
    cols = ", ".join(c["name"] for c in source.meta.get("input_columns", []))
    raise TridentError(f"no held-out rows for the deployment gates: pass deploy.data=FILE (CSV or Parquet with the "
                       f"columns {cols})")


# ---- the running server ------------------------------------------------------------------------------
def running_server(repository: Path) -> dict[str, Any] | None:
    """server.json of the live server on ``repository``, or None."""
    import urllib.request

    info = state.read_server_info(repository)
    if not info or not state.pid_alive(info.get("pid")):
        return None
    try:
        with urllib.request.urlopen(f"http://{info['http_url']}/v2/health/ready", timeout=2) as r:  # noqa: S310
            return info if r.status == 200 else None
    except OSError:
        return None


def start_background(repository: Path, overrides: list[str] | None = None, timeout_s: float = 120.0) -> dict[str, Any]:
    """Start ``trident serve`` on ``repository`` as a detached process and wait until it serves."""
    log = state.state_dir(repository) / "supervisor.log"
    cmd = [sys.executable, "-m", "engine", "serve", "--foreground", "--repository", str(repository),
           *(overrides or [])]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = state.read_server_info(repository)
        if info and info.get("supervisor_pid") == proc.pid and running_server(repository):
            return info
        if proc.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
            raise TridentError(f"trident serve exited with code {proc.returncode}: {' | '.join(tail)}")
        time.sleep(0.2)
    raise TridentError(f"trident serve did not become ready in {timeout_s:g} s (log: {log})")


def ensure_server(cfg: Any, repository: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    info = running_server(repository)
    if info is not None:
        return info
    if not cfg.deploy.start_server:
        raise TridentError(f"no Triton server is running on {repository}: start one with `trident serve` "
                           f"(or set deploy.start_server=true)")
    LOG.info("deploy: starting a Triton server on %s", repository)
    return start_background(repository, overrides)


# ---- records --------------------------------------------------------------------------------------
def write_record(cfg: Any, record: dict[str, Any], run_dir: Path | None) -> list[Path]:
    """Write the deployment record atomically to ``records_dir`` and the run folder."""
    name = f"{record['id']}.json"
    paths = [atomic.write_json(Path(str(cfg.deploy.records_dir)) / name, record)]
    if run_dir is not None and run_dir.is_dir():
        paths.append(atomic.write_json(run_dir / "deployments" / name, record))
    return paths


def _record_gates_in_manifest(run_dir: Path | None, ctx: Any, gates: dict[str, dict[str, Any]]) -> None:
    if ctx is not None:
        for g, rec in gates.items():
            ctx.record_gate(f"deploy_{g}", bool(rec.get("passed")), {k: v for k, v in rec.items() if k != "passed"})
        return
    if run_dir is None or not (run_dir / "manifest.json").is_file():
        return
    from engine.registry.manifest import Manifest, load_manifest

    try:
        data = load_manifest(run_dir)
        m = Manifest(data["run_id"], run_dir, data)
        for g, rec in gates.items():
            m["gates"][f"deploy_{g}"] = {"passed": bool(rec.get("passed")), "at": state.now(),
                                         **{k: v for k, v in rec.items() if k != "passed"}}
        m.save()
    except (OSError, ValueError, KeyError) as exc:
        LOG.warning("deploy: cannot add the gates to %s/manifest.json: %s", run_dir, exc)


def _mlflow_tags(source: ModelSource, tags: dict[str, str]) -> str | None:
    if not source.registry:
        return None
    try:
        from engine.registry.mlflow_registry import client

        c = client(source.registry.get("tracking_uri"))
        for k, v in tags.items():
            c.set_model_version_tag(source.registry["name"], source.registry["version"], k, v)
    except Exception as exc:  # noqa: BLE001 - the deployment record is the authority; MLflow mirrors it
        LOG.warning("deploy: cannot tag the MLflow model version: %s", exc)
        return str(exc)
    return None


def move_alias(registry: dict[str, Any] | None, alias: str) -> str | None:
    """Point ``alias`` at the registered version; returns an error text or None."""
    if not registry:
        return None
    try:
        from engine.registry.mlflow_registry import client

        c = client(registry.get("tracking_uri"))
        c.set_registered_model_alias(registry["name"], alias, str(registry["version"]))
    except Exception as exc:  # noqa: BLE001
        LOG.warning("cannot move the MLflow alias %s: %s", alias, exc)
        return str(exc)
    return None


# ---- deploy ---------------------------------------------------------------------------------------
def deploy(cfg: Any, source: ModelSource, ctx: Any = None, reason: str = "",
           overrides: list[str] | None = None) -> dict[str, Any]:
    """Export, gate and promote ``source``; return the deployment record.

    Raises
    ------
    GateFailed
        A gate failed: the record says which and why; the previously served version keeps serving.
    TridentError
        Export, server or registry problems.
    """
    import tritonclient.grpc as grpcclient

    from engine.export.pipeline_runtime import PipelineRuntime
    from engine.export.triton_repo import export_model
    from engine.features.frame import to_columns as embedded_columns
    from engine.serve import gates as G
    from engine.serve import rollout
    from engine.serve.client import PipelineClient
    from engine.serve.columns import to_columns, to_json_rows
    from engine.serve.tritonenv import ensure_env

    dcfg = cfg.deploy
    repo = repository_of(cfg)
    dep_id = new_deployment_id()
    record: dict[str, Any] = {"id": dep_id, "kind": "deploy", "started": state.now(), "model": source.name,
                              "version": source.version, "source": source.described,
                              "registry": source.registry, "run_id": source.run_id, "repository": str(repo),
                              "reason": reason, "gates": {}, "status": "running"}
    env = ensure_env(dcfg.server.env_path, quiet=console.quiet())
    frame, origin = held_out(cfg, source, ctx)
    specs = source.meta["input_columns"]
    record["held_out"] = {"origin": origin, "rows": int(len(frame))}
    sample = to_json_rows(to_columns(frame.iloc[: int(dcfg.export.sample_rows)], specs), specs)
    started_here = running_server(repo) is None
    info = ensure_server(cfg, repo, overrides)
    url = info["grpc_url"]
    record["server"] = {"grpc_url": url, "http_url": info["http_url"], "pid": info["pid"],
                        "started_here": started_here}
    LOG.info("deploy: exporting %s as %s version %d", source.described, source.name, source.version)
    exported = export_model(source.folder, repo, source.version, dcfg.export, sample, env_path=env, name=source.name)
    record["export"] = exported.record()
    previous = state.served_version(repo, source.name)
    record["previous_version"] = previous
    client = grpcclient.InferenceServerClient(url)
    runtime = PipelineRuntime.load(str(source.folder))
    kinds = {c["name"]: c["kind"] for c in specs}
    hashed = {e["column"] for e in getattr(runtime.features, "categorical", []) if e.get("encoder") == "hashing"}
    failed: str | None = None
    try:
        cand = rollout.load_candidate(client, repo, source.name, source.version)
        record["candidate"] = cand
        rows = frame.iloc[: max(1, int(dcfg.parity.rows))].reset_index(drop=True)
        gate_cols = to_columns(rows, specs)
        results: list[G.GateResult] = []
        if dcfg.parity.enabled:
            with PipelineClient(url, cand, version=source.version) as pc:
                results.append(G.parity_gate(pc, runtime, rows, embedded_columns(rows, kinds, raw_strings=hashed),
                                             float(dcfg.parity.score_atol)))
        if dcfg.integration.enabled and (not results or results[-1].passed):
            with PipelineClient(url, cand, version=source.version) as pc:
                schema = pc.schema
            results.append(G.integration_gate(url, cand, source.version, schema, runtime, gate_cols,
                                              float(dcfg.parity.score_atol)))
        if dcfg.load_test.enabled and (not results or results[-1].passed):
            with PipelineClient(url, cand, version=source.version) as pc:
                schema = pc.schema
            results.append(G.load_gate(url, cand, source.version, schema, gate_cols, dcfg.load_test))
        for r in results:
            record["gates"][r.name] = r.record()
            LOG.info("deploy: gate %s %s%s", r.name, "passed" if r.passed else "FAILED",
                     f": {r.reason}" if r.reason else "")
        for g in GATES:
            record["gates"].setdefault(g, {"passed": None, "reason": "skipped"})
        failed = next((f"{r.name}: {r.reason}" for r in results if not r.passed), None)
    finally:
        try:
            rollout.unload_candidate(client, repo, source.name)
        except Exception as exc:  # noqa: BLE001
            LOG.warning("deploy: cannot unload the candidate: %s", exc)
    recorded = {g: rec for g, rec in record["gates"].items() if rec.get("passed") is not None}
    _record_gates_in_manifest(source.run_dir, ctx, recorded)
    tags = {f"trident.deploy.gate.{g}": ("passed" if rec.get("passed") else "failed") for g, rec in recorded.items()}
    tags["trident.deploy.id"] = dep_id
    if failed:
        record.update(status="refused", reason_refused=failed, ended=state.now(), served_version=previous)
        tags["trident.deploy.status"] = "refused"
        _mlflow_tags(source, tags)
        write_record(cfg, record, source.run_dir)
        state.log_event(repo, "deploy_refused", model=source.name, version=source.version, deployment=dep_id,
                        reason=failed)
        client.close()
        keep = f"; version {previous} keeps serving" if previous is not None else "; nothing was served before"
        raise GateFailed(f"deployment of {source.name} version {source.version} refused by gate {failed}{keep} "
                         f"(record: {Path(str(cfg.deploy.records_dir)) / (dep_id + '.json')})")
    standby = previous if dcfg.warm_standby and previous is not None and previous < source.version else None
    with state.repo_lock(repo):
        seconds = rollout.switch(client, repo, source.name, source.version, standby=standby)
        entry = state.set_served(repo, source.name, source.version, "deploy", deployment=dep_id,
                                 registry=source.registry, layout=exported.layout, reason=reason)
    ok = rollout.is_served(client, source.name, source.version)
    client.close()
    alias_error = move_alias(source.registry, str(dcfg.champion_alias))
    tags["trident.deploy.status"] = "promoted"
    _mlflow_tags(source, tags)
    record.update(status="promoted", served_version=source.version, switch_seconds=round(seconds, 4),
                  warm_standby=standby,
                  ready=bool(ok), champion_alias=None if source.registry is None else str(dcfg.champion_alias),
                  alias_error=alias_error, ended=state.now(), served_entry=entry)
    write_record(cfg, record, source.run_dir)
    state.log_event(repo, "deploy", model=source.name, version=source.version, previous=previous, deployment=dep_id)
    return record


def _show_predictions(url: str, name: str, frame: Any, origin: str, rows: int = 5) -> None:
    """Score a few held-out rows through the served model over gRPC and log them."""
    from engine.serve.client import PipelineClient

    with PipelineClient(url, name) as client:
        pred = client.predict(frame.iloc[:rows])
    LOG.info("deploy: %d held-out rows scored by Triton (gRPC %s, model %s):", len(pred), url, name)
    for i, (s, lab) in enumerate(zip(pred["score"], pred["label"])):
        LOG.info("  row %d: score %.4f  label %s", i, s, lab)


def deploy_stage(ctx: Any) -> dict[str, Any] | None:
    """Deploy the model ``trident run`` just registered (when ``deploy.enabled``); for the run's stage list.

    Writes the held-out rows beside the run (``deploy/heldout.json``), exports and gates the model,
    promotes it and records everything in the run manifest. A failing gate raises GateFailed.
    """
    cfg = ctx.cfg
    if not cfg.deploy.enabled:
        LOG.info("deploy: disabled (deploy.enabled=false)")
        return None
    folder = ctx.state.get("model_dir")
    if folder is None:
        raise TridentError("deploy: the run has no packaged model (the register stage must run first)")
    save_heldout(ctx)
    from engine.export.triton_repo import read_meta

    meta = read_meta(folder)
    reg = ctx.state.get("registered_model") or ctx.manifest.data.get("registered_model") or {}
    name = str(meta.get("name") or "model")
    if reg.get("registered") and reg.get("version"):
        registry = {"name": reg["name"], "version": str(reg["version"]), "tracking_uri": reg.get("tracking_uri")}
        version = int(reg["version"])
    else:
        registry = None
        version = _version_for_folder(repository_of(cfg), name, Path(folder))
    source = ModelSource(folder=Path(folder).resolve(), name=name, version=version, registry=registry,
                         run_id=ctx.run_id, run_dir=ctx.run_dir.resolve(), described=f"run {ctx.run_id}", meta=meta)
    repo = repository_of(cfg)
    started_here = running_server(repo) is None
    try:
        record = deploy(cfg, source, ctx=ctx, reason=f"trident run {ctx.run_id}")
        ctx.state["serving"] = f"{record['server']['grpc_url']} model {name} version {version}"
        try:
            _show_predictions(record["server"]["grpc_url"], name, *held_out(cfg, source, ctx))
        except TridentError as exc:
            LOG.warning("deploy: cannot score sample rows through the server: %s", exc)
    finally:
        if started_here and not cfg.deploy.keep_serving:
            from engine.serve.supervisor import stop_server

            stop_server(repo)
            LOG.info("deploy: stopped the Triton server this run started (deploy.keep_serving=false)")
    ctx.manifest["deployment"] = {k: record[k] for k in ("id", "model", "version", "status", "server")}
    ctx.manifest.save()
    return record


# ---- rollback ---------------------------------------------------------------------------------------
def previous_version(repository: Path, name: str) -> int | None:
    """The most recent version served before the current one that is still on disk."""
    from engine.export import triton_repo

    rec = state.read_served(repository)["models"].get(name) or {}
    current = rec.get("version")
    on_disk = set(triton_repo.version_folders(repository, name))
    for entry in reversed(rec.get("history", [])):
        for v in (entry.get("version"), entry.get("previous")):
            if v is not None and int(v) != current and int(v) in on_disk:
                return int(v)
    return None


def _registry_for(repository: Path, name: str, version: int) -> dict[str, Any] | None:
    rec = state.read_served(repository)["models"].get(name) or {}
    for entry in reversed(rec.get("history", [])):
        if entry.get("version") == version and entry.get("registry"):
            return entry["registry"]
    return None


def _probe(client: Any, repository: Path, name: str, version: int) -> str | None:
    """None when one held-out row stored with ``version`` is answered by the server, else the error."""
    from engine.export.triton_repo import SAMPLE, model_names
    from engine.serve.client import make_inputs, schema_from_config
    from engine.serve.columns import from_json_rows, take

    try:
        sample = json.loads((repository / model_names(repository, name)[0] / str(version) / SAMPLE).read_text())
        schema = schema_from_config(client.get_model_config(name, str(version)).config)
        client.infer(name, make_inputs(schema, take(from_json_rows(sample), slice(0, 1))),
                     model_version=str(version), client_timeout=10.0)
        return None
    except Exception as exc:  # noqa: BLE001
        msg = getattr(exc, "message", None)
        return " ".join(str(msg() if callable(msg) else exc).split())


def rollback(cfg: Any, name: str | None = None, to: int | None = None, reason: str = "") -> dict[str, Any]:
    """Serve ``to`` (default: the version served before the current one) again, now and after restarts;
    move the champion alias; record when and why.

    Raises
    ------
    TridentError
        Nothing served, no earlier version, or the version's files are not in the repository.
    """
    from engine.serve import rollout

    repo = repository_of(cfg)
    served = state.read_served(repo)["models"]
    if name is None:
        if len(served) != 1:
            raise TridentError(f"{repo} serves {sorted(served) or 'no model'}; name the model to roll back")
        name = next(iter(served))
    if name not in served:
        raise TridentError(f"{repo} does not serve a model named {name!r} (served: {sorted(served) or 'none'})")
    current = int(served[name]["version"])
    target = int(to) if to is not None else previous_version(repo, name)
    if target is None:
        raise TridentError(f"{name} has no earlier version to roll back to (served: version {current})")
    rec_id = new_deployment_id()
    record: dict[str, Any] = {"id": rec_id, "kind": "rollback", "started": state.now(), "model": name,
                              "from_version": current, "version": target, "reason": reason, "repository": str(repo)}
    info = running_server(repo)
    t0 = time.perf_counter()
    with state.repo_lock(repo):
        if info is not None:
            import tritonclient.grpc as grpcclient

            client = grpcclient.InferenceServerClient(info["grpc_url"])
            try:
                standby = current if cfg.deploy.warm_standby and current < target else None
                seconds = rollout.switch(client, repo, name, target, standby=standby)
                error = _probe(client, repo, name, target)
                if error is not None:  # a standby whose stub died: start it again
                    LOG.warning("rollback: version %d did not answer (%s); reloading it", target, error)
                    rollout.unload(client, repo, name)
                    rollout.load_persisted(client, repo, name, target)
                    error = _probe(client, repo, name, target)
                    seconds = time.perf_counter() - t0
                record["ready"] = error is None
                record["probe_error"] = error
            finally:
                client.close()
            record["switch_seconds"] = round(seconds, 4)
        else:
            rollout.persist_version(repo, name, target)
            record["switch_seconds"] = None
            record["note"] = "no server running: the switch takes effect when `trident serve` starts"
        registry = _registry_for(repo, name, target)
        state.set_served(repo, name, target, "rollback", reason=reason, rollback=rec_id, registry=registry)
    record["registry"] = registry
    record["alias_error"] = move_alias(registry, str(cfg.deploy.champion_alias))
    record["ended"] = state.now()
    write_record(cfg, record, None)
    state.log_event(repo, "rollback", model=name, version=target, previous=current, reason=reason, record=rec_id)
    return record
