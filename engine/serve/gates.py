"""Deployment gates, run against a loaded candidate before it may serve traffic.

- :func:`parity_gate`: served predictions equal the embedded predictor's (PipelineRuntime in-process)
  on held-out rows: ``|score diff| <= score_atol`` and equal labels.
- :func:`integration_gate`: malformed requests (wrong dtype, wrong shape, missing input, empty batch,
  batch over the maximum, text that is not UTF-8) get a clean one-line error (no traceback, no file
  path); an unknown category and NaN inputs get the documented valid answer (the embedded predictor's);
  the model still answers a valid request after each one.
- :func:`load_gate`: closed loops at each configured concurrency and an open loop at a constant rate,
  against the p99 latency and error-rate SLOs of ``deploy.load_test``.

Each returns a :class:`GateResult`; the caller records it and decides.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.serve.client import ModelSchema, decode_outputs, make_inputs
from engine.serve.columns import n_rows, take

_TRACEBACK = re.compile(r"Traceback|File \"|\.py\b|line \d+, in ")
_ABS_PATH = re.compile(r"(?<![\w.])/(?:[\w.-]+/)+[\w.-]*")


@dataclass
class GateResult:
    name: str
    passed: bool
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason, **self.details}


def _message(exc: BaseException) -> str:
    msg = getattr(exc, "message", None)
    text = msg() if callable(msg) else (msg or str(exc) or type(exc).__name__)
    return " ".join(str(text).split())


def is_clean(message: str) -> bool:
    """One line, no traceback, no file path."""
    return bool(message) and "\n" not in message and not _TRACEBACK.search(message) \
        and not _ABS_PATH.search(message) and len(message) < 1000


# ---- parity -----------------------------------------------------------------------------------
def parity_gate(client: Any, runtime: Any, frame: Any, embedded_columns: dict[str, np.ndarray],
                score_atol: float) -> GateResult:
    """Served predictions of ``frame`` (through the client's conversion) vs ``runtime.predict`` of the
    embedded predictor's columns for the same rows."""
    served = client.predict(frame)
    expected = runtime.predict(embedded_columns)
    s_got = served["score"].to_numpy(dtype=np.float64)
    s_exp = np.asarray(expected["score"], dtype=np.float64)
    diff = np.abs(s_got - s_exp)
    diff = np.where(np.isnan(s_got) & np.isnan(s_exp), 0.0, diff)
    diff = np.where(np.isnan(diff), np.inf, diff)
    worst = float(diff.max()) if diff.size else 0.0
    lab_exp = [x.item() if hasattr(x, "item") else x for x in expected["label"]]
    lab_got = [x.item() if hasattr(x, "item") else x for x in served["label"].tolist()]
    mismatched = [i for i, (a, b) in enumerate(zip(lab_got, lab_exp)) if str(a) != str(b)]
    details = {"rows": int(len(s_exp)), "max_abs_score_diff": worst, "score_atol": float(score_atol),
               "label_mismatches": len(mismatched)}
    if worst > score_atol:
        i = int(np.argmax(diff))
        return GateResult("parity", False, f"served score differs from the embedded predictor's by {worst:.3g} "
                          f"at held-out row {i} ({s_got[i]!r} vs {s_exp[i]!r}; tolerance {score_atol:g})", details)
    if mismatched:
        i = mismatched[0]
        return GateResult("parity", False, f"{len(mismatched)} served label(s) differ from the embedded "
                          f"predictor's (row {i}: {lab_got[i]!r} vs {lab_exp[i]!r})", details)
    return GateResult("parity", True, "", details)


# ---- malformed requests -----------------------------------------------------------------------
def _tensor(name: str, arr: np.ndarray, wire: str) -> Any:
    import tritonclient.grpc as grpcclient

    t = grpcclient.InferInput(name, list(arr.shape), wire)
    t.set_data_from_numpy(arr)
    return t


def malformed_cases(schema: ModelSchema, row: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The integration cases for ``schema``: ``{"case", "inputs", "expect": "error"|"answer", "columns"}``
    (``columns``: what the embedded predictor gets for an ``answer`` case)."""
    cases: list[dict[str, Any]] = []
    specs = schema.columns
    numeric = [s for s in specs if schema.wire_types[s["tensor"]] != "BYTES"]
    text = [s for s in specs if s["kind"] == "categorical"]
    dates = [s for s in specs if s["kind"] == "datetime"]
    good = make_inputs(schema, row)

    def replaced(spec: dict[str, str], tensor: Any | None) -> list[Any]:
        out = [t for t, s in zip(good, specs) if s["name"] != spec["name"]]
        return out if tensor is None else out + [tensor]

    target = numeric[0] if numeric else specs[0]
    wrong = "FP32" if schema.wire_types[target["tensor"]] == "FP64" else "FP64"
    if target in numeric:
        arr = np.asarray(row[target["name"]], dtype=np.float32 if wrong == "FP32" else np.float64).reshape(-1, 1)
        text_arr = np.array([[b"abc"]], dtype=object)
        cases.append({"case": "wrong_dtype", "expect": "error",
                      "inputs": replaced(target, _tensor(target["tensor"], arr, wrong))})
        cases.append({"case": "text_in_numeric_column", "expect": "error",
                      "inputs": replaced(target, _tensor(target["tensor"], text_arr, "BYTES"))})
    else:
        cases.append({"case": "wrong_dtype", "expect": "error",
                      "inputs": replaced(target, _tensor(target["tensor"], np.zeros((1, 1)), "FP64"))})
    if target in numeric:
        wide = np.zeros((1, 2), dtype=np.float64 if schema.wire_types[target["tensor"]] == "FP64" else np.float32)
        cases.append({"case": "wrong_shape", "expect": "error",
                      "inputs": replaced(target, _tensor(target["tensor"], wide, schema.wire_types[target["tensor"]]))})
    cases.append({"case": "missing_input", "expect": "error", "inputs": replaced(specs[-1], None)})
    empty = {s["name"]: row[s["name"]][:0] for s in specs}
    cases.append({"case": "empty_batch", "expect": "error_or_empty", "inputs": make_inputs(schema, empty)})
    big = max(1, int(schema.max_batch_size)) + 1
    cases.append({"case": "batch_over_maximum", "expect": "error",
                  "inputs": make_inputs(schema, take(row, np.zeros(big, dtype=np.int64)))})
    if text:
        unknown = dict(row)
        unknown[text[0]["name"]] = np.array(["__a_category_never_seen__"], dtype=object)
        cases.append({"case": "unknown_category", "expect": "answer", "columns": unknown,
                      "inputs": make_inputs(schema, unknown)})
        bad = [t for t, s in zip(good, specs) if s["name"] != text[0]["name"]]
        bad.append(_tensor(text[0]["tensor"], np.array([[b"\xff\xfe"]], dtype=object), "BYTES"))
        cases.append({"case": "invalid_utf8", "expect": "any_clean", "inputs": bad})
        missing_text = dict(row)
        missing_text[text[0]["name"]] = np.array([None], dtype=object)
        cases.append({"case": "missing_category", "expect": "answer", "columns": missing_text,
                      "inputs": make_inputs(schema, missing_text)})
    if dates:
        bad_date = dict(row)
        bad_date[dates[0]["name"]] = np.array(["not a date"], dtype=object)
        cases.append({"case": "unparseable_datetime", "expect": "error", "inputs": make_inputs(schema, bad_date)})
    if numeric:
        nan_row = dict(row)
        for s in numeric:
            nan_row[s["name"]] = np.array([np.nan])
        cases.append({"case": "nan", "expect": "answer", "columns": nan_row, "inputs": make_inputs(schema, nan_row)})
    return cases


def integration_gate(url: str, model: str, version: int | None, schema: ModelSchema, runtime: Any,
                     columns: dict[str, np.ndarray], score_atol: float = 1e-6, timeout_s: float = 10.0) -> GateResult:
    """Send every malformed case, then a valid request; all must behave as documented."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    v = "" if version is None else str(int(version))
    row = take(columns, slice(0, 1))
    valid = make_inputs(schema, row)
    results: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    try:
        for case in malformed_cases(schema, row):
            rec: dict[str, Any] = {"expect": case["expect"]}
            try:
                res = client.infer(model, case["inputs"], model_version=v, client_timeout=timeout_s)
                out = decode_outputs(res, schema)
                rec["outcome"] = "answer"
                rec["rows"] = int(len(out["score"]))
            except Exception as exc:  # noqa: BLE001 - InferenceServerException
                out = None
                rec["outcome"] = "error"
                rec["message"] = _message(exc)
                rec["clean"] = is_clean(rec["message"])
            ok = _judge(case, rec, out, runtime, score_atol)
            rec["passed"] = ok
            try:  # the server keeps serving after each malformed request
                client.infer(model, valid, model_version=v, client_timeout=timeout_s)
                rec["served_after"] = True
            except Exception as exc:  # noqa: BLE001
                rec["served_after"] = False
                rec["after_error"] = _message(exc)
                ok = False
                rec["passed"] = False
            if not ok:
                failures.append(case["case"])
            results[case["case"]] = rec
    finally:
        client.close()
    details = {"cases": results}
    if failures:
        first = results[failures[0]]
        why = first.get("message") or first.get("after_error") or f"outcome {first.get('outcome')}"
        return GateResult("integration", False, f"malformed-request case(s) {', '.join(failures)} misbehaved "
                          f"({failures[0]}: {why})", details)
    return GateResult("integration", True, "", details)


def _judge(case: dict[str, Any], rec: dict[str, Any], out: dict[str, np.ndarray] | None, runtime: Any,
           score_atol: float) -> bool:
    expect = case["expect"]
    if expect == "error":
        return rec["outcome"] == "error" and rec["clean"]
    if expect == "error_or_empty":
        return (rec["outcome"] == "error" and rec["clean"]) or (out is not None and len(out["score"]) == 0)
    if expect == "any_clean":
        return rec["outcome"] == "answer" or rec["clean"]
    if rec["outcome"] != "answer" or out is None:
        return False
    want = runtime.predict(case["columns"])
    diff = float(np.max(np.abs(np.asarray(out["score"], dtype=np.float64) - want["score"])))
    rec["max_abs_score_diff"] = diff
    return bool(np.isfinite(out["score"]).all()) and diff <= score_atol and \
        [str(x) for x in out["label"]] == [str(x) for x in want["label"]]


# ---- load ---------------------------------------------------------------------------------------
def load_gate(url: str, model: str, version: int | None, schema: ModelSchema, columns: dict[str, np.ndarray],
              cfg: Any) -> GateResult:
    """Closed loops at ``cfg.concurrencies`` then an open loop at ``cfg.open_loop_rate`` requests/s."""
    from engine.serve.loadtest import closed_loop, grpc_worker_factory, open_loop

    rows = max(1, int(cfg.rows_per_request))
    n = n_rows(columns)

    def inputs_for(i: int) -> list[Any]:
        idx = (np.arange(rows) + i * rows) % n
        return make_inputs(schema, take(columns, idx))

    make = grpc_worker_factory(url, model, version, inputs_for, timeout_s=float(cfg.request_timeout_s))
    concs = [int(c) for c in cfg.concurrencies]
    p99s = [float(x) for x in cfg.p99_ms]
    if len(p99s) == 1:
        p99s = p99s * len(concs)
    if len(p99s) != len(concs):
        from engine.errors import ConfigError

        raise ConfigError(f"deploy.load_test.p99_ms has {len(p99s)} values for {len(concs)} concurrencies "
                          f"{concs}: give one value, or one per concurrency")
    runs: list[dict[str, Any]] = []
    failures: list[str] = []
    max_err = float(cfg.max_error_rate)
    for c, slo in zip(concs, p99s):
        r = closed_loop(make, c, float(cfg.duration_s), int(cfg.max_requests), int(cfg.warmup_requests))
        rec = {**r.record(), "slo_p99_ms": slo, "slo_max_error_rate": max_err}
        rec["passed"] = bool(r.requests > 0 and r.p99_ms <= slo and r.error_rate <= max_err)
        runs.append(rec)
        if not rec["passed"]:
            failures.append(f"closed loop at concurrency {c}: p99 {r.p99_ms:.3g} ms (SLO {slo:g} ms), "
                            f"errors {r.error_rate:.1%} (max {max_err:.1%})"
                            + (f", e.g. {r.error_samples[0]}" if r.error_samples else ""))
    if float(cfg.open_loop_rate) > 0:
        r = open_loop(make, float(cfg.open_loop_rate), float(cfg.open_loop_duration_s),
                      workers=max(4, max(concs) if concs else 4), max_requests=int(cfg.max_requests))
        slo = float(cfg.open_loop_p99_ms)
        rec = {**r.record(), "slo_p99_ms": slo, "slo_max_error_rate": max_err}
        rec["passed"] = bool(r.requests > 0 and r.p99_ms <= slo and r.error_rate <= max_err)
        runs.append(rec)
        if not rec["passed"]:
            failures.append(f"open loop at {r.rate:g} req/s: p99 {r.p99_ms:.3g} ms (SLO {slo:g} ms), errors "
                            f"{r.error_rate:.1%} (max {max_err:.1%})")
    details = {"runs": runs, "rows_per_request": rows}
    if failures:
        return GateResult("load_test", False, "; ".join(failures), details)
    return GateResult("load_test", True, "", details)
