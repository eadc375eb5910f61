"""Pipeline stages of model development: ``govern``, ``split``, ``features``, ``train``.

Reads ``ctx.state`` ``frame``, ``y``, ``target``, ``task``, ``kinds`` (and ``id_column``, ``date_column``)
left by ingest / validate, and leaves for evaluation:

- ``govern``: ``excluded`` ({column: reason}), ``sensitive`` (matched columns), ``proxies``; writes
  governance.json and the gate ``no_sensitive_features``.
- ``split``: ``splits`` ({"train", "valid", "test"} -> row positions); writes splits.json.
- ``features``: ``features`` (the fitted FeaturePipeline), ``X`` and ``ysplit`` per split,
  ``feature_names``; writes features/ and features_report.json.
- ``train``: ``candidates`` (list of :class:`engine.train.candidate.Candidate`); writes candidates.json.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from engine import console
from engine.errors import ConfigError, DataError, TridentError

LOG = console.LOG

GOVERNANCE_JSON = "governance.json"
SPLITS_JSON = "splits.json"
FEATURES_DIR = "features"
FEATURES_REPORT = "features_report.json"
CANDIDATES_JSON = "candidates.json"
GATE_SENSITIVE = "no_sensitive_features"


def _value(x: Any) -> Any:
    return getattr(x, "value", x)


def _plain(x: Any) -> Any:
    from omegaconf import OmegaConf

    if OmegaConf.is_config(x):
        return OmegaConf.to_container(x, resolve=True, enum_to_str=True)
    return x


def _require(ctx: Any, *keys: str, stage: str) -> None:
    missing = [k for k in keys if k not in ctx.state]
    if missing:
        before = "ingest, validate" + (", split" if stage in ("features", "train") else "")
        raise DataError(f"{stage}: no {', '.join(map(repr, missing))} in the run state; the stages before "
                        f"{stage} ({before}) must run first")


def _id_column(ctx: Any) -> str | None:
    return ctx.state.get("id_column") or getattr(ctx.cfg.data, "id_column", None)


def _date_column(ctx: Any) -> str | None:
    return ctx.state.get("date_column") or getattr(ctx.cfg.data, "date_column", None)


def _note(ctx: Any, note: str) -> None:
    notes = ctx.manifest.data.setdefault("notes", [])
    if note not in notes:
        notes.append(note)
    LOG.info("%s", note)


# ---- govern ----------------------------------------------------------------------------------------

def govern(ctx: Any) -> None:
    """Stage ``govern``: find sensitive columns and their proxies; decide what the features exclude."""
    from engine.governance.sensitive import review

    _require(ctx, "frame", "target", stage="govern")
    g = ctx.cfg.governance
    frame = ctx.state["frame"]
    if hasattr(frame, "to_pandas"):
        frame = frame.to_pandas()
    sample_rows = int(getattr(getattr(ctx.cfg, "profile", None), "sample_rows", 200_000) or 0)
    rep = review(frame, dict(ctx.state.get("kinds") or {}), sensitive_names=[str(s) for s in g.sensitive],
                 threshold=float(g.proxy_threshold), drop_proxies=bool(g.drop_proxies),
                 target=str(ctx.state["target"]), id_column=_id_column(ctx), sample_rows=sample_rows,
                 seed=ctx.seed("govern.sample"), enabled=bool(g.enabled))
    ctx.write_json(GOVERNANCE_JSON, rep)
    ctx.state["excluded"] = dict(rep["excluded"])
    ctx.state["sensitive"] = list(rep["sensitive_columns"])
    ctx.state["proxies"] = dict(rep["proxies"])
    ctx.state["governance"] = rep
    passed = not rep["sensitive_used_as_features"]
    ctx.record_gate(GATE_SENSITIVE, passed, {
        "sensitive_columns": rep["sensitive_columns"], "sensitive_absent": rep["sensitive_absent"],
        "proxies": {f: round(r["value"], 4) for f, r in rep["proxies"].items()},
        "excluded": sorted(rep["excluded"]), "sensitive_used_as_features": rep["sensitive_used_as_features"],
        "proxies_kept": rep["proxies_kept"], "enabled": rep["enabled"]})
    ctx.log_metrics({"governance_sensitive_columns": len(rep["sensitive_columns"]),
                     "governance_proxies": len(rep["proxies"])})
    if rep["sensitive_columns"]:
        LOG.info("governance: sensitive %s excluded from the features", ", ".join(rep["sensitive_columns"]))
    if rep["sensitive_absent"]:
        LOG.info("governance: not in the data: %s", ", ".join(rep["sensitive_absent"]))
    for f, r in rep["proxies"].items():
        LOG.info("governance: %s is a proxy of %s (%s %.3f)%s", f, r["sensitive"], r["measure"], r["value"],
                 "" if f in rep["excluded"] else "; kept (governance.drop_proxies=false)")
    if not passed:
        LOG.warning("governance: sensitive columns enter the features (governance.enabled=false): %s",
                    ", ".join(rep["sensitive_used_as_features"]))


# ---- split -----------------------------------------------------------------------------------------

def _dates(frame: Any, column: str) -> np.ndarray:
    import pandas as pd

    if column not in frame.columns:
        raise ConfigError(f"data.date_column: column {column!r} is not in the data; columns: "
                          f"{', '.join(map(str, frame.columns))}")
    s = frame[column]
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        return s.to_numpy(dtype="datetime64[ns]")
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_datetime(s, errors="coerce", utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def split(ctx: Any) -> None:
    """Stage ``split``: train / validation / test row positions, stratified or by time; splits.json."""
    from engine.train.split import SPLITS, check_fractions, split_indices, split_record

    _require(ctx, "frame", "y", "task", stage="split")
    frame, y = ctx.state["frame"], np.asarray(ctx.state["y"])
    task = str(_value(ctx.state["task"]))
    sc = ctx.cfg.model.split
    fr = check_fractions(sc.train, sc.valid, sc.test)
    seed = ctx.seed("split")
    date_col = _date_column(ctx)
    dates = _dates(frame, date_col) if date_col else None
    if dates is not None and sc.by_time:
        method = "time"
        splits = split_indices(len(frame), fractions=fr, order_by=dates, seed=seed)
    else:
        stratified = task == "binary" and bool(sc.stratify)
        method = "stratified" if stratified else "random"
        splits = split_indices(len(frame), y=y if stratified else None, fractions=fr, stratify=stratified, seed=seed)
    rec = split_record(splits, y, task, method=method, seed=seed, fractions=fr,
                       dates=dates if dates is not None and np.issubdtype(dates.dtype, np.datetime64) else None,
                       date_column=date_col if method == "time" else None)
    ctx.write_json(SPLITS_JSON, rec)
    ctx.state["splits"] = splits
    ctx.log_metrics({f"rows_{k}": len(splits[k]) for k in SPLITS})
    LOG.info("split (%s): %s", method, ", ".join(f"{k} {len(splits[k])}" for k in SPLITS))
    if task == "binary":
        for k in SPLITS:
            part = y[splits[k]]
            if len(part) and part.min() == part.max():
                LOG.warning("split: the %s split holds a single class (%d rows)", k, len(part))


# ---- features --------------------------------------------------------------------------------------

def feature_inputs(ctx: Any, frame: Any) -> tuple[list[str], dict[str, str]]:
    """Columns handed to the feature pipeline and the columns left out with the reason."""
    kinds = dict(ctx.state.get("kinds") or {})
    target, id_col = str(ctx.state["target"]), _id_column(ctx)
    excluded = dict(ctx.state.get("excluded") or {})
    dropped: dict[str, str] = {}
    cols: list[str] = []
    for c in map(str, frame.columns):
        if c == target or kinds.get(c) == "target":
            dropped[c] = "target"
        elif c == id_col or kinds.get(c) == "id":
            dropped[c] = "identifier"
        elif c in excluded:
            dropped[c] = excluded[c]
        else:
            cols.append(c)
    return cols, dropped


def _used_inputs(pipe: Any) -> list[str] | None:
    """The raw columns a fitted pipeline reads, when it says so."""
    for attr in ("input_columns_", "inputs_", "columns_"):
        v = getattr(pipe, attr, None)
        if v is not None:
            return [str(c) for c in (v.keys() if isinstance(v, dict) else v)]
    return None


def _feature_namespace(ctx: Any) -> Any:
    """The array namespace the matrices are built in: the backend's (CuPy) on a GPU run, else ``None``
    (NumPy, exactly the CPU path)."""
    backend = getattr(ctx, "backend", None)
    return backend.xp if backend is not None and backend.is_gpu else None


def _device_record(xp: Any, shapes: dict[str, tuple[int, ...]], seconds: float,
                   partitioned: bool = False) -> dict[str, Any]:
    """Where the feature matrices were built (``manifest["features_device"]``)."""
    if xp is None:
        return {"device": "host", "array": "numpy", "fit": "host", "transform": "numpy"}
    if partitioned:
        fit = ("host: per-partition statistics (features.fit_partitions); the train matrix computed by the "
               "partitions and copied to the device")
    else:
        fit = ("device: the columns converted on the host once (strings dictionary-encoded) and moved to the "
               "device; counts, target sums, out-of-fold encodings and the train matrix computed there; the "
               "seeded sample's statistics on the host")
    return {"device": "gpu", "array": getattr(xp, "__name__", type(xp).__name__), "fit": fit,
            "transform": "valid and test transformed on the device",
            "host_copies": "ctx.state['X'] holds NumPy copies for host estimators, evaluation and export; "
                           "ctx.state['X_device'] the device matrices",
            "shapes": {k: list(v) for k, v in shapes.items()}, "transform_seconds": round(seconds, 4)}


def _fit_partitioned(ctx: Any, pipe: Any, frame: Any, y: np.ndarray, kinds: dict[str, str], excluded: list[str],
                     partitions: int) -> np.ndarray:
    """Fit ``pipe`` on ``partitions`` Dask partitions of the training rows (per-partition statistics merged
    once, on the run's cluster or Dask's local threads) and return the training matrix."""
    import dask
    import dask.dataframe as dd

    # the partitions keep the frame's own dtypes (Dask would turn object strings into Arrow strings,
    # and the fitted pipeline's report would then differ from the in-memory fit's)
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(frame, npartitions=min(partitions, max(len(frame), 1)), sort=False)
    with executor(ctx) as client:
        X = pipe.fit_transform_dask(ddf, y, kinds=kinds, exclude=excluded)
        X = (client.compute(X).result() if client is not None else X.compute())
    LOG.info("features: fitted on %d partitions of the training rows (%s)", ddf.npartitions,
             "Dask cluster" if client is not None else "Dask local threads")
    return np.asfortranarray(X, dtype=np.float32)


def features(ctx: Any) -> None:
    """Stage ``features``: fit the feature pipeline on the training split, transform every split.

    On a GPU backend the pipeline is fitted with the backend's array namespace (the full-data statistics,
    the out-of-fold target encoding and the training matrix are computed on the device; see
    :meth:`FeaturePipeline.fit`) and the validation and test rows are transformed there too; the device
    matrices are left in ``ctx.state["X_device"]`` for estimators that take device arrays, and
    ``ctx.state["X"]`` holds their NumPy copies (what scikit-learn, evaluation and export read).
    ``manifest["features_device"]`` records where the matrices were built.
    """
    from engine.backend import to_numpy
    from engine.features import FeaturePipeline

    _require(ctx, "frame", "y", "splits", "target", stage="features")
    frame, y, splits = ctx.state["frame"], np.asarray(ctx.state["y"]), ctx.state["splits"]
    kinds = dict(ctx.state.get("kinds") or {})
    cols, dropped = feature_inputs(ctx, frame)
    if not cols:
        raise DataError(f"features: no column is left to build features from (dropped: "
                        f"{', '.join(f'{c} ({r})' for c, r in dropped.items())})")
    # governance exclusions travel with the data so the pipeline's own report records them too
    excluded = [c for c in map(str, frame.columns) if c in dropped and c in (ctx.state.get("excluded") or {})]
    data = frame[[c for c in map(str, frame.columns) if c in set(cols) | set(excluded)]]
    rows = {k: np.asarray(v, dtype=np.int64) for k, v in splits.items()}
    t0 = time.perf_counter()
    pipe = FeaturePipeline(ctx.cfg.features)
    train_rows = data.iloc[rows["train"]].reset_index(drop=True)
    fit_kinds = {c: kinds[c] for c in cols + excluded if c in kinds}
    partitions = int(getattr(ctx.cfg.features, "fit_partitions", 0) or 0)
    xp = _feature_namespace(ctx)
    X_device: dict[str, Any] = {}
    if partitions > 0:
        X = {"train": _fit_partitioned(ctx, pipe, train_rows, y[rows["train"]], fit_kinds, excluded, partitions)}
        if xp is not None:
            X_device["train"] = xp.asarray(X["train"])
    elif xp is None:
        X = {"train": pipe.fit_transform(train_rows, y[rows["train"]], kinds=fit_kinds, exclude=excluded)}
    else:
        X_device["train"] = pipe.fit_transform(train_rows, y[rows["train"]], kinds=fit_kinds, exclude=excluded,
                                               xp=xp)
        X = {"train": np.asfortranarray(to_numpy(X_device["train"]))}
    fit_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    if xp is None:
        for k in ("valid", "test"):
            X[k] = pipe.transform(data.iloc[rows[k]].reset_index(drop=True))
    else:
        for k in ("valid", "test"):
            X_device[k] = pipe.transform(data.iloc[rows[k]].reset_index(drop=True), xp=xp)
            X[k] = to_numpy(X_device[k])
    ctx.manifest["features_device"] = _device_record(xp, {k: tuple(v.shape) for k, v in X.items()},
                                                     time.perf_counter() - t1, partitioned=partitions > 0)
    names = [str(n) for n in pipe.feature_names_]
    leaked = sorted((set(_used_inputs(pipe) or []) | set(names)) & set(excluded))
    if leaked:
        ctx.record_gate(GATE_SENSITIVE, False, {"reason": "excluded columns reached the features",
                                                "columns": leaked})
        raise TridentError(f"features: excluded columns reached the feature pipeline: {', '.join(leaked)}")
    pipe.save(ctx.path(FEATURES_DIR))
    ctx.record_dir(FEATURES_DIR)
    report = _plain(pipe.report())
    ctx.write_json(FEATURES_REPORT, {"inputs": cols, "dropped": dropped, "n_features": len(names),
                                     "feature_names": names, "fit_seconds": round(fit_seconds, 4),
                                     "fitted_on": "train", "rows": {k: int(len(v)) for k, v in rows.items()},
                                     "pipeline": report})
    ctx.state["features"] = pipe
    ctx.state["feature_names"] = names
    ctx.state["X"] = X
    if X_device:
        ctx.state["X_device"] = X_device
    ctx.state["ysplit"] = {k: y[v] for k, v in rows.items()}
    ctx.log_metrics({"n_features": len(names), "features_fit_seconds": fit_seconds})
    LOG.info("features: %d columns -> %d features (fitted on %d training rows in %.2f s)", len(cols), len(names),
             len(rows["train"]), fit_seconds)


# ---- train -----------------------------------------------------------------------------------------

@contextlib.contextmanager
def executor(ctx: Any, n_jobs: int = 1) -> Iterator[Any]:
    """The Dask client for this run (``ctx.state["dask_client"]`` if a stage opened one, else one opened
    from ``cfg.cluster`` for the duration), or ``None``; the manifest records which."""
    from engine.cluster import _kind, cluster_client, describe_client

    shared = ctx.state.get("dask_client")
    if shared is not None:
        ctx.manifest["executor"] = describe_client(shared)
        yield shared
        return
    kind = _kind(ctx.cfg.cluster)
    with cluster_client(ctx.cfg.cluster) as client:
        ctx.manifest["executor"] = describe_client(client, kind, n_jobs)
        ctx.manifest.save()
        yield client


def candidate_space(name: str, model_cfg: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(search space, fixed parameters) of ``name``: ``model.spaces.<name>`` replaces the registry's
    default space; ``model.params.<name>`` adds fixed parameters."""
    from engine.train.registry import get_spec

    spec = get_spec(name)
    spaces = _plain(getattr(model_cfg, "spaces", None)) or {}
    params = _plain(getattr(model_cfg, "params", None)) or {}
    space = spaces[name] if name in spaces and spaces[name] is not None else dict(spec.space)
    fixed = dict(params.get(name) or {})
    clash = sorted(set(space) & set(fixed))
    if clash:
        raise ConfigError(f"model.params.{name}: {', '.join(clash)} also searched in model.spaces.{name}; "
                          "fix it in one place")
    return dict(space), fixed


def settings_from(ctx: Any, task: str) -> Any:
    from engine.train.search import SearchSettings

    s = ctx.cfg.search
    return SearchSettings(task=task, scoring=str(s.scoring), early_stopping=bool(s.early_stopping),
                          early_stopping_rounds=int(s.early_stopping_rounds),
                          early_stopping_fraction=float(s.early_stopping_fraction),
                          library=str(ctx.backend.estimators), n_jobs=int(s.n_jobs),
                          device="gpu" if ctx.backend.is_gpu else "cpu")


def _device_matrices(ctx: Any, settings: Any, client: Any, cv_rows: np.ndarray | None,
                     with_valid: bool) -> tuple[Any, Any, dict[str, Any]]:
    """The device matrices the search and the refit hand to estimators that fit device arrays, and
    what ``candidates.json["inputs"]`` says about it.

    On a GPU run in-process, the matrices the features stage left on the device are used as they are
    (the CV sample is taken on the device); with a Dask client each worker uploads the host copy it
    receives, since its GPU is not the one they sit on.
    """
    from engine.train.search import DeviceMatrices

    dev = ctx.state.get("X_device")
    if settings.device != "gpu":
        return None, None, {"estimators": "host arrays (NumPy)"}
    if not dev:
        return None, None, {"estimators": "host arrays; estimators that fit device arrays upload them per fit"}
    if client is not None:
        return None, None, {"estimators": "host arrays scattered to the Dask workers; estimators that fit device "
                                          "arrays upload them on their worker's GPU"}
    xp = ctx.backend.xp
    full = DeviceMatrices(xp, dev["train"], dev.get("valid") if with_valid else None)
    cv = full if cv_rows is None else DeviceMatrices(xp, full.rows(cv_rows))
    return cv, full, {"estimators": "device matrices of the features stage for estimators that fit device arrays "
                                    "(no per-fit upload); NumPy copies for the others"}


def train(ctx: Any) -> None:
    """Stage ``train``: search each candidate's space by k-fold CV on the training split, refit the best."""
    from engine.train import registry
    from engine.train.candidate import Candidate
    from engine.train.search import Trial, best_trial, cross_validate, make_folds, plan_trials, refit
    from engine.train.split import subsample

    _require(ctx, "X", "ysplit", "task", stage="train")
    task = str(_value(ctx.state["task"]))
    mc, sc = ctx.cfg.model, ctx.cfg.search
    names = [str(n) for n in mc.candidates]
    if not names:
        raise ConfigError("model.candidates: empty; name at least one of " + ", ".join(registry.available()))
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"model.candidates: {', '.join(dup)} listed more than once")
    specs = {n: registry.get_spec(n) for n in names}
    X, ys = ctx.state["X"], ctx.state["ysplit"]
    Xtr, ytr = X["train"], np.asarray(ys["train"])
    Xva, yva = X.get("valid"), ys.get("valid")
    if Xva is not None and len(Xva) == 0:
        Xva, yva = None, None
    settings = settings_from(ctx, task)
    rows = subsample(ytr, int(sc.max_rows), seed=ctx.seed("search.sample"), stratify=task == "binary")
    X_cv, y_cv = (Xtr, ytr) if len(rows) == len(ytr) else (Xtr[rows], ytr[rows])
    folds = make_folds(y_cv, task, int(sc.folds), ctx.seed("search.folds"))
    method = str(_value(sc.method))
    plans: dict[str, list[Trial]] = {}
    for n in names:
        space, fixed = candidate_space(n, mc)
        if not sc.enabled:
            space = {}
        trials = plan_trials(space, method=method, n_trials=int(sc.n_trials), seed=ctx.seed(f"search.{n}"),
                             grid_points=int(sc.grid_points), max_grid=int(sc.max_grid), where=f"model.spaces.{n}")
        plans[n] = [Trial(t.index, {**fixed, **t.params}, t.seed) for t in trials]
    n_fits = sum(len(p) for p in plans.values()) * len(folds)
    LOG.info("train: %d candidate(s), %s search, %d fits (%d-fold CV on %d rows, scoring %s)", len(names), method,
             n_fits, len(folds), len(y_cv), settings.scoring)
    t0 = time.perf_counter()
    with executor(ctx, settings.n_jobs) as client:
        dev_cv, dev_full, inputs = _device_matrices(ctx, settings, client, rows if len(rows) != len(ytr) else None,
                                                    Xva is not None)
        results = cross_validate(plans, X_cv, y_cv, folds, settings, client=client, device=dev_cv)
        best = {n: best_trial(results[n]) for n in names}
        failed = {n: next((r.error for r in results[n] if r.error), "no finite CV score")
                  for n, b in best.items() if b is None}
        for n, err in failed.items():
            LOG.warning("train: every trial of %s failed (%s); it is not a candidate", n, err)
        if len(failed) == len(names):
            raise TridentError("train: every trial of every candidate failed: "
                               + "; ".join(f"{n}: {e}" for n, e in failed.items()))
        fitted = refit({n: b for n, b in best.items() if b is not None}, Xtr, ytr, Xva, yva, settings, client=client,
                       device=dev_full)
    search_seconds = time.perf_counter() - t0
    candidates: list[Candidate] = []
    records: list[dict[str, Any]] = []
    for n in names:
        trials = [r.record() for r in results[n]]
        b = best[n]
        if b is None:
            records.append({"name": n, "failed": True, "error": failed[n], "trials": trials})
            continue
        f = fitted[n]
        notes = list(f["notes"])
        for note in notes:
            _note(ctx, note)
        n_errors = sum(1 for r in results[n] if r.error)
        if n_errors:
            notes.append(f"{n_errors} of {len(results[n])} trials failed (see trials[].error)")
        cand = Candidate(
            name=n, estimator=f["estimator"], params=dict(b.params),
            cv={"metric": settings.scoring, "mean": b.mean, "std": b.std, "folds": len(folds),
                "fold_scores": list(b.fold_scores), "trial": b.index},
            trials=trials, fit_seconds=float(f["seconds"]), interpretable=bool(specs[n].interpretable),
            library=str(f["library"]), notes=notes, seed=int(b.seed),
            search={"method": method, "n_trials": len(results[n]), "folds": len(folds), "cv_rows": int(len(y_cv)),
                    "seconds": float(sum(r.seconds for r in results[n])), "n_iter": f["n_iter"],
                    "early_stopped_on": f["early_stopped_on"], "valid_score": f["valid_score"],
                    "supports_early_stopping": bool(specs[n].supports_early_stopping)})
        candidates.append(cand)
        records.append(cand.record())
        ctx.log_metrics({f"cv_{n}_{settings.scoring}": b.mean, f"cv_{n}_{settings.scoring}_std": b.std,
                         f"fit_seconds_{n}": f["seconds"]})
        LOG.info("train: %-13s cv %s %.4f ± %.4f  refit %.2f s  %s", n, settings.scoring, b.mean, b.std,
                 f["seconds"], b.params)
    ctx.write_json(CANDIDATES_JSON, {"task": task, "scoring": settings.scoring, "folds": len(folds),
                                     "method": method, "executor": (ctx.manifest.data.get("executor") or {}).get("kind"),
                                     "library": settings.library, "n_jobs": settings.n_jobs, "inputs": inputs,
                                     "seconds": round(search_seconds, 4), "candidates": records})
    ctx.state["candidates"] = candidates
