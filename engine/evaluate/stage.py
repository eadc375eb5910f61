"""Pipeline stages ``evaluate`` and ``select``.

``evaluate`` scores every candidate on the validation split (metrics, cost-optimal threshold, latency,
fairness) and checks the KPIs; ``select`` chooses the best qualifying candidate by the primary KPI,
reports its test-split metrics and writes the model card, or ends the run ``rejected`` with a report
naming what each candidate failed.

Reads ``ctx.state``: ``candidates``, ``X``, ``ysplit``, ``task``; optionally ``frame``, ``splits``,
``sensitive``, ``target``, ``positive_label``, ``features``, ``excluded``.
Writes ``evaluation.json``, ``model_card.html``, ``model_card.json``; sets ``ctx.state`` ``evaluation``,
``chosen`` (the Candidate), ``threshold``, ``model_card_html``, ``model_card_json``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from engine import console
from engine.errors import ConfigError, DataError

LOG = console.LOG

REPORT = "evaluation.json"
CARD_HTML = "model_card.html"
CARD_JSON = "model_card.json"


def task_of(ctx: Any) -> str:
    t = ctx.state.get("task")
    if t is None:
        t = ctx.cfg.data.task
    return str(getattr(t, "value", t))


def _y(ctx: Any, split: str) -> np.ndarray:
    from engine.backend import to_numpy

    return np.asarray(to_numpy(ctx.state["ysplit"][split]), dtype=np.float64).reshape(-1)


def _frame_rows(ctx: Any, split: str) -> Any:
    """The raw frame restricted to ``split`` (pandas), or None when the run state has no frame/splits."""
    frame, splits = ctx.state.get("frame"), ctx.state.get("splits")
    if frame is None or splits is None or split not in splits:
        return None
    if hasattr(frame, "to_pandas"):
        frame = frame.to_pandas()
    from engine.backend import to_numpy

    rows = np.asarray(to_numpy(splits[split]))
    if rows.dtype == bool:
        return frame.loc[rows]
    return frame.iloc[rows]


def sensitive_values(ctx: Any, split: str) -> tuple[dict[str, Any], list[str]]:
    """Raw values of the sensitive attributes on ``split`` and the attributes that are unavailable."""
    names = [str(c) for c in (ctx.state.get("sensitive") or [])]
    if not names:
        return {}, []
    rows = _frame_rows(ctx, split)
    if rows is None:
        return {}, names
    present = {c: rows[c].to_numpy() for c in names if c in rows.columns}
    return present, [c for c in names if c not in present]


def _band_edges(ctx: Any, names: list[str], kpi: Any) -> dict[str, Any]:
    from engine.evaluate.fairness import band_edges

    train = _frame_rows(ctx, "train")
    out = {}
    for c in names:
        if train is None or c not in train.columns:
            continue
        out[c] = band_edges(train[c].to_numpy(), int(_kpi(kpi, "fairness_bands", 4)),
                            int(_kpi(kpi, "fairness_max_levels", 10)))
    return out


def _kpi(kpi: Any, key: str, default: Any) -> Any:
    v = getattr(kpi, key, default) if kpi is not None else default
    return default if v is None else v


def _file_record(rec: dict[str, Any], keep_latency: bool) -> dict[str, Any]:
    """What the written report keeps of a candidate record (timings only when a KPI depends on them)."""
    out = dict(rec)
    if not keep_latency:
        out.pop("latency_ms_per_1000", None)
    return out


def _matrix(ctx: Any, cand: Any, split: str) -> Any:
    """The feature matrix ``cand`` is scored on: on a GPU run, the device matrix the features stage left
    for an estimator that takes device arrays (cuML's, ``trident_gbdt``): its predictions are computed
    on the GPU and only the scores come to the host for the metrics; else the host matrix."""
    from engine.train import registry

    dev = ctx.state.get("X_device") or {}
    if split in dev and registry.takes_device_arrays(cand.name, cand.library):
        return dev[split]
    return ctx.state["X"].get(split)


def _scored_on(ctx: Any, cand: Any, split: str) -> str:
    return "device" if _matrix(ctx, cand, split) is not ctx.state["X"].get(split) else "host"


def evaluate(ctx: Any) -> None:
    """Stage ``evaluate``: validation metrics and KPI verdict for every candidate."""
    from engine.evaluate.evaluation import evaluate_candidate, jsonable
    from engine.evaluate.kpi import KpiSpec
    from engine.evaluate.metrics import LATENCY_METRIC, scalar_metrics

    for key in ("candidates", "X", "ysplit"):
        if key not in ctx.state:
            raise DataError(f"evaluate: no {key!r} in the run state; the split, features and train stages "
                            f"must run first")
    task = task_of(ctx)
    kpi = getattr(ctx.cfg, "kpi", None)
    spec = KpiSpec.from_config(kpi, task)
    candidates = list(ctx.state["candidates"])
    if not candidates:
        raise DataError("evaluate: the train stage produced no candidate (check model.candidates)")
    X_valid = ctx.state["X"].get("valid")
    y_valid = _y(ctx, "valid")
    if X_valid is None or y_valid.size == 0:
        raise ConfigError("evaluate: the validation split is empty; KPIs, the decision threshold and selection "
                          "need it (set the validation share of the split above 0)")
    if task == "binary" and (y_valid.min() == y_valid.max()):
        LOG.warning("evaluate: the validation split holds a single class; ROC AUC is undefined")
    sens, unavailable = sensitive_values(ctx, "valid")
    edges = _band_edges(ctx, list(sens), kpi)
    n_bins = int(_kpi(kpi, "calibration_bins", 10))
    min_group = int(_kpi(kpi, "fairness_min_group", 30))
    records, valid_scores = [], {}
    for cand in console.track(candidates, "evaluating candidates", total=len(candidates)):
        rec, s = evaluate_candidate(cand, _matrix(ctx, cand, "valid"), y_valid, task, spec, n_bins=n_bins,
                                    sensitive=sens if task == "binary" else None, band_edges=edges,
                                    min_group=min_group)
        rec["scored_on"] = _scored_on(ctx, cand, "valid")
        records.append(jsonable(rec))
        valid_scores[cand.name] = s
        metrics = scalar_metrics(rec["valid"])
        if rec.get("latency_ms_per_1000") is not None:
            metrics[LATENCY_METRIC] = rec["latency_ms_per_1000"]
        ctx.log_metrics(metrics, prefix=f"valid.{cand.name}.")
        verdict = "meets the KPIs" if rec["kpi"]["passed"] else \
            "fails: " + "; ".join(f["message"] for f in rec["kpi"]["failures"])
        LOG.info("evaluate: %s %s = %.4f, %s", cand.name, spec.primary, rec["valid"].get(spec.primary, float("nan")),
                 verdict)
    report = {"format_version": 1, "task": task, "kpi": spec.record(), "split": "valid",
              "rows": {"valid": int(y_valid.size)},
              "sensitive": {"attributes": sorted(sens), "unavailable": unavailable, "bands": edges},
              "candidates": records, "verdict": None}
    ctx.state["evaluation"] = report
    ctx.state["kpi_spec"] = spec
    ctx.state["valid_scores"] = valid_scores
    ctx.state["band_edges"] = edges
    _write_report(ctx, report, spec.needs_latency)


def _write_report(ctx: Any, report: dict[str, Any], keep_latency: bool) -> None:
    out = dict(report)
    out["candidates"] = [_file_record(r, keep_latency) for r in report["candidates"]]
    ctx.write_json(REPORT, out)


def select(ctx: Any) -> None:
    """Stage ``select``: choose the best qualifying candidate, report its test metrics, write the model card.

    Raises
    ------
    StopRun
        ``rejected`` when no candidate meets every KPI (the report names each failure).
    """
    from engine.evaluate.evaluation import evaluation_test, rejection_reason
    from engine.evaluate.evaluation import select as pick
    from engine.pipeline import StopRun

    if "evaluation" not in ctx.state:
        raise DataError("select: no evaluation in the run state; the evaluate stage must run first")
    report, spec = ctx.state["evaluation"], ctx.state["kpi_spec"]
    records = report["candidates"]
    chosen = pick(records, spec)
    if chosen is None:
        reason = rejection_reason(records)
        report["verdict"] = {"status": "rejected", "reason": reason, "chosen": None}
        _write_report(ctx, report, spec.needs_latency)
        ctx.record_gate("kpi", False, {"reason": reason,
                                       "failures": {r["name"]: r["kpi"]["failures"] for r in records}})
        raise StopRun("rejected", reason)
    cand = next(c for c in ctx.state["candidates"] if c.name == chosen["name"])
    task = report["task"]
    kpi = getattr(ctx.cfg, "kpi", None)
    threshold = chosen["threshold"]["threshold"] if task == "binary" else None
    X_test = _matrix(ctx, cand, "test")
    y_test = _y(ctx, "test")
    test, test_scores, fair_test = evaluation_test(
        cand, X_test, y_test, task, threshold, spec, n_bins=int(_kpi(kpi, "calibration_bins", 10)),
        sensitive=sensitive_values(ctx, "test")[0], band_edges=ctx.state.get("band_edges"),
        min_group=int(_kpi(kpi, "fairness_min_group", 30)))
    report["verdict"] = {"status": "chosen", "chosen": cand.name, "primary": spec.primary,
                         "primary_value": chosen["valid"].get(spec.primary), "threshold": chosen.get("threshold")}
    report["test"] = {"candidate": cand.name, "rows": int(y_test.size), "metrics": test, "fairness": fair_test,
                      "scored_on": _scored_on(ctx, cand, "test")}
    _write_report(ctx, report, spec.needs_latency)
    ctx.record_gate("kpi", True, {"chosen": cand.name, "primary": spec.primary,
                                  "primary_value": chosen["valid"].get(spec.primary),
                                  "thresholds": [t.text for t in spec.thresholds]})
    if spec.max_demographic_parity_diff is not None or spec.max_equalized_odds_diff is not None:
        ctx.record_gate("fairness", True, {"chosen": cand.name, "valid": chosen.get("fairness_valid")})
    from engine.evaluate.metrics import scalar_metrics

    ctx.log_metrics(scalar_metrics(test), prefix="test.")
    ctx.log_metrics({k: v for k, v in scalar_metrics(chosen["valid"]).items()}, prefix="valid.")
    if threshold is not None:
        ctx.log_metrics({"threshold": threshold})
    ctx.state.update(chosen=cand, chosen_record=chosen, threshold=threshold, test_scores=test_scores)
    LOG.info("select: %s (%s %.4f on validation; test %s)", cand.name, spec.primary,
             chosen["valid"].get(spec.primary, float("nan")),
             ", ".join(f"{k} {v:.4f}" for k, v in scalar_metrics(test).items() if k in
                       ("roc_auc", "pr_auc", "f1", "rmse", "r2")))
    write_model_card(ctx)


def write_model_card(ctx: Any) -> None:
    """Write model_card.json and model_card.html for the chosen candidate (deterministic bytes)."""
    from engine.evaluate.model_card import build_card, render_html

    card, figures = build_card(ctx)
    ctx.write_json(CARD_JSON, card)
    path = ctx.write_text(CARD_HTML, render_html(card, figures))
    ctx.state["model_card_html"] = path
    ctx.state["model_card_json"] = ctx.path(CARD_JSON)
    LOG.info("model card: %s", path)
