"""The ``ingest`` and ``validate`` stages of ``trident run``.

``ingest`` reads the data the ``data`` group describes and decides what each column is:

- ``ctx.state["raw"]``: the frame as read; ``["kinds"]``: ``{column: kind}``; ``["target"]``: the target
  column; ``["task"]``: ``"binary"`` or ``"regression"``; ``["id_column"]``, ``["date_column"]``.

``validate`` infers the data contract (or reads ``validation.contract``), checks the data against it,
writes ``contract.json`` and ``quarantine.csv`` into the run folder and leaves:

- ``ctx.state["frame"]``: accepted rows (pandas; numeric float64, categorical ``category`` with string
  levels, datetime ``datetime64``, the target column as read), index 0..n-1;
- ``["y"]``: the target of those rows (int8 0/1 for binary, float64 for regression);
- ``["contract"]``, ``["positive_label"]`` (None for regression), ``["accepted_rows"]`` (input positions).
"""
from __future__ import annotations

from typing import Any

from engine import console
from engine.data import kinds as K
from engine.errors import ConfigError, DataError

LOG = console.LOG


def _value(x: Any) -> Any:
    return getattr(x, "value", x)


def _required(cfg_node: Any, key: str, full_key: str, hint: str) -> Any:
    from omegaconf import OmegaConf

    if OmegaConf.is_config(cfg_node) and OmegaConf.is_missing(cfg_node, key):
        raise ConfigError(f"{full_key}: required ({hint})")
    value = getattr(cfg_node, key)
    if value is None or str(value).strip() == "":
        raise ConfigError(f"{full_key}: required ({hint})")
    return value


def _check_named(frame: Any, key: str, name: Any) -> str | None:
    from engine.data.contract import missing_column_message

    if name is None or str(name).strip() == "":
        return None
    name = str(name)
    if name not in frame.columns:
        raise DataError(missing_column_message(key, name, frame.columns))
    return name


def ingest(ctx: Any) -> None:
    """Read the data, record its provenance and infer the column kinds."""
    from engine.data.ingest import read_table, resolve_path, source_of

    d = ctx.cfg.data
    source = source_of(d)
    target = str(_required(d, "target", "data.target", "the column to predict, e.g. data.target=Status"))
    task = str(_value(d.task))
    declared = K.check_declared(d.dtypes)
    if source == "synthetic":
        ctx.manifest["seeds"]["data.synthetic"] = int(d.seed)
        ctx.manifest["data_source"] = {"source": source, "generator": "engine.data.synthetic.make_credit",
                                       "rows": int(d.rows), "seed": int(d.seed), "drifted": bool(d.drifted)}
        raw = read_table(d)
    else:
        path = resolve_path(d)
        raw = read_table(d)  # reads (and reports a missing or bad file) before hashing it
        ctx.add_input(path)
        ctx.manifest["data_source"] = {"source": source, "path": str(path.resolve())}
    target = _check_named(raw, "data.target", target)
    id_column = _check_named(raw, "data.id_column", d.id_column)
    date_column = _check_named(raw, "data.date_column", d.date_column)
    for col in declared:
        _check_named(raw, f"data.dtypes.{col}", col)
    kinds = K.infer_kinds(raw, target=target, id_column=id_column, declared=declared, date_column=date_column)
    ctx.add_dataset("raw", raw)
    ctx.log_metrics({"rows": len(raw), "columns": raw.shape[1]}, prefix="data.")
    counts: dict[str, int] = {}
    for k in kinds.values():
        counts[k] = counts.get(k, 0) + 1
    LOG.info("data: %s rows x %s columns (%s)", f"{len(raw):,}", raw.shape[1],
             ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    ctx.state.update(raw=raw, kinds=kinds, target=target, task=task, id_column=id_column, date_column=date_column)


def _settings(v: Any) -> dict[str, Any]:
    extra = str(_value(v.extra_columns))
    if extra not in ("error", "drop"):
        raise ConfigError(f"validation.extra_columns: expected error or drop; got {extra!r}")
    for key in ("max_quarantine_share", "max_unparseable_share", "null_rate_margin"):
        x = float(getattr(v, key))
        if not 0.0 <= x <= 1.0:
            raise ConfigError(f"validation.{key}: expected a share between 0 and 1; got {x}")
    if float(v.range_margin) < 0:
        raise ConfigError(f"validation.range_margin: expected a share >= 0; got {v.range_margin}")
    if int(v.max_categories) < 1:
        raise ConfigError(f"validation.max_categories: expected at least 1; got {v.max_categories}")
    return {"extra_columns": extra, "max_unparseable_share": float(v.max_unparseable_share)}


def _load_contract(ctx: Any, path: str) -> Any:
    from pathlib import Path

    from engine.data.contract import Contract

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"validation.contract: file '{p}' does not exist")
    contract = Contract.load(p)
    target = ctx.state["target"]
    if contract.target.column != target:
        raise ConfigError(f"validation.contract: the contract's target is {contract.target.column!r} "
                          f"but data.target is {target!r}")
    if contract.task != ctx.state["task"]:
        raise ConfigError(f"validation.contract: the contract's task is {contract.task!r} "
                          f"but data.task is {ctx.state['task']!r}")
    ctx.add_input(p)
    return contract


def validate(ctx: Any) -> None:
    """Infer or load the contract, check the data, quarantine failing rows, record the validation gate."""
    from engine.data.contract import check, infer_contract
    from engine.data.quarantine import FILENAME, write_quarantine_csv

    v = ctx.cfg.validation
    raw = ctx.state["raw"]
    settings = _settings(v)
    d = ctx.cfg.data
    try:
        if v.contract:
            contract = _load_contract(ctx, str(v.contract))
        else:
            contract = infer_contract(
                raw, ctx.state["kinds"], ctx.state["target"], ctx.state.get("id_column"),
                task=ctx.state["task"], positive_label=None if d.positive_label is None else str(d.positive_label),
                max_categories=int(v.max_categories), range_margin=float(v.range_margin),
                null_rate_margin=float(v.null_rate_margin), max_unparseable_share=settings["max_unparseable_share"])
        result = check(contract, raw, extra_columns=settings["extra_columns"],
                       max_unparseable_share=settings["max_unparseable_share"], require_target=True,
                       row_checks=bool(v.enabled))
    except DataError as exc:
        ctx.record_gate("validation", False, {"error": str(exc)})
        raise

    ctx.write_json("contract.json", contract.to_dict())
    ctx.write_with(FILENAME, lambda p: write_quarantine_csv(result.quarantine, p))
    rows_in, acc, quar = result.rows_in, result.rows_accepted, result.rows_quarantined
    if rows_in != acc + quar:  # an invariant, checked even under python -O
        raise AssertionError(f"rows in {rows_in} != accepted {acc} + quarantined {quar}")
    ctx.log_metrics({"rows_in": rows_in, "rows_accepted": acc, "rows_quarantined": quar,
                     "quarantine_share": result.quarantine_share}, prefix="validation.")
    for w in result.warnings:
        LOG.warning("validation: %s", w)
    details = {**result.summary(), "contract": "contract.json", "quarantine": FILENAME,
               "contract_source": str(v.contract) if v.contract else "inferred",
               "target": contract.target.to_dict(), "row_checks": bool(v.enabled)}
    if quar:
        top = sorted(result.reasons.items(), key=lambda kv: -kv[1])[:3]
        LOG.warning("validation: %s of %s rows quarantined (%s); see %s", f"{quar:,}", f"{rows_in:,}",
                    "; ".join(f"{r}: {c:,}" for r, c in top), ctx.path(FILENAME))
    limit = float(v.max_quarantine_share)
    if result.quarantine_share > limit:
        top = sorted(result.reasons.items(), key=lambda kv: -kv[1])[:3]
        msg = (f"validation: {result.quarantine_share:.0%} of rows ({quar:,} of {rows_in:,}) break the data "
               f"contract, more than validation.max_quarantine_share={limit:g}; most common: "
               + "; ".join(f"{r} ({c:,} rows)" for r, c in top) + f"; see {ctx.path(FILENAME)}")
        ctx.record_gate("validation", False, {**details, "error": msg})
        raise DataError(msg)

    frame = result.accepted
    ctx.state.update(frame=frame, y=result.y, contract=contract, kinds=contract.kinds,
                     positive_label=contract.target.positive_label, accepted_rows=result.accepted_rows,
                     validation=result.summary())
    ctx.add_dataset("accepted", frame)
    ctx.record_gate("validation", True, details)
    LOG.info("validation: %s rows accepted, %s quarantined", f"{acc:,}", f"{quar:,}")
