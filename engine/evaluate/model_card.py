"""The model card: model_card.json (the record) and model_card.html (the same, readable offline).

The HTML page is self-contained: inline CSS, figures as inline SVG, no scripts, fonts or links to fetch.
Both files are deterministic for the same run inputs (no timestamps, no run ids, fixed SVG ids), so
``trident reproduce`` can compare their hashes.
"""
from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from engine.evaluate.evaluation import jsonable

FORMAT_VERSION = 1
TOP_IMPORTANCES = 20

STATIC_LIMITATIONS = (
    "The model learns associations in historical data. It does not establish causes, and its feature "
    "importances are not causal effects.",
    "Its performance holds for data like the data it was trained and tested on. Monitor input drift and "
    "ground-truth performance once it is in use, and retrain when they degrade.",
    "Sensitive attributes are kept out of the features, but other features can still act as proxies for "
    "them. Review the fairness table before each new use.",
    "Decisions that affect people should keep a path to human review.",
)


# ------------------------------------------------------------------------------------------ data
def feature_names(features: Any, n: int) -> list[str]:
    """Names of the estimator's input columns, from the fitted feature pipeline (``f0..`` if unknown)."""
    for attr in ("feature_names", "feature_names_", "feature_names_out_"):
        v = getattr(features, attr, None)
        if v is not None and not callable(v):
            names = [str(x) for x in v]
            if len(names) == n:
                return names
    fn = getattr(features, "get_feature_names_out", None)
    if callable(fn):
        try:
            names = [str(x) for x in fn()]
            if len(names) == n:
                return names
        except Exception:
            pass
    return [f"f{i}" for i in range(n)]


def importances(estimator: Any, names: list[str]) -> dict[str, Any] | None:
    """The largest feature importances the estimator exposes, or None.

    Trident GBDT: total gain; tree ensembles: impurity decrease; linear models: coefficients on the
    (scaled) features, ranked by magnitude.
    """
    values, kind = None, None
    fi = getattr(estimator, "feature_importance", None)
    if callable(fi):
        try:
            values, kind = np.asarray(fi(kind="gain"), dtype=np.float64), "total gain"
        except TypeError:
            values, kind = np.asarray(fi(), dtype=np.float64), "importance"
    elif getattr(estimator, "feature_importances_", None) is not None:
        try:
            values, kind = np.asarray(estimator.feature_importances_, dtype=np.float64), "impurity decrease"
        except Exception:
            values = None
    elif getattr(estimator, "coef_", None) is not None:
        values, kind = np.asarray(estimator.coef_, dtype=np.float64).reshape(-1), "coefficient"
    if values is None or values.size != len(names):
        return None
    from engine.backend import to_numpy

    values = np.asarray(to_numpy(values), dtype=np.float64)
    order = np.argsort(-np.abs(values), kind="mergesort")[:TOP_IMPORTANCES]
    return {"kind": kind, "features": [{"name": names[i], "value": float(values[i])} for i in order]}


def _split_summary(y: np.ndarray, task: str) -> dict[str, Any]:
    if y.size == 0:
        return {"rows": 0}
    if task == "binary":
        return {"rows": int(y.size), "positives": int(y.sum()), "positive_rate": float(y.mean())}
    return {"rows": int(y.size), "mean": float(y.mean()), "std": float(y.std())}


def _auc_standard_error(auc: float, n_pos: int, n_neg: int) -> float | None:
    """Hanley & McNeil (1982) standard error of an ROC AUC."""
    if not (n_pos and n_neg) or auc is None or not math.isfinite(auc):
        return None
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return float(math.sqrt(max(var, 0.0)))


def limitations(card: dict[str, Any]) -> list[str]:
    """Notes generated from the card's numbers, then the standing ones."""
    notes: list[str] = []
    task = card["model"]["task"]
    test = card["evaluation"].get("test") or {}
    valid = card["evaluation"].get("valid") or {}
    primary = card["kpis"]["config"]["primary"]
    rows = card["data"]["splits"].get("test", {})
    if task == "binary" and test.get("roc_auc") is not None:
        se = _auc_standard_error(test["roc_auc"], rows.get("positives", 0),
                                 rows.get("rows", 0) - rows.get("positives", 0))
        if se is not None:
            notes.append(f"Test metrics come from {rows.get('rows', 0):,} rows: the test ROC AUC "
                         f"{test['roc_auc']:.3f} has a standard error of about {se:.3f}.")
    if valid.get(primary) is not None and test.get(primary) is not None:
        gap = test[primary] - valid[primary]
        worse = gap < 0 if card["kpis"]["config"]["maximize"] else gap > 0
        if worse and abs(gap) > 0.02 * max(1.0, abs(valid[primary])):
            notes.append(f"{primary} is worse on the test split ({test[primary]:.4f}) than on the validation "
                         f"split used for selection ({valid[primary]:.4f}): expect the test figure in use.")
    if task == "binary":
        if test.get("ece") is not None and test["ece"] > 0.05:
            notes.append(f"Probabilities are not well calibrated (expected calibration error {test['ece']:.3f} on "
                         f"the test split): read scores as a ranking, not as exact probabilities.")
        rate = card["data"]["splits"].get("train", {}).get("positive_rate")
        if rate is not None and (rate < 0.1 or rate > 0.9):
            notes.append(f"The classes are imbalanced (positive rate {rate:.3f} in training): accuracy alone is "
                         f"misleading; read precision, recall and PR AUC.")
        thr = card["model"].get("threshold") or {}
        if thr.get("method") == "min_expected_cost":
            c = card["kpis"]["config"]["cost"]
            notes.append(f"The decision threshold {thr['threshold']:.4f} minimises the expected cost on the "
                         f"validation split for costs FP={c['fp']:g}, FN={c['fn']:g}, TP={c['tp']:g}, "
                         f"TN={c['tn']:g}; other costs call for another threshold.")
    sens = card["features"].get("sensitive") or {}
    if not sens.get("attributes"):
        notes.append("No sensitive attribute was available to evaluate: fairness was not assessed.")
    for name in sens.get("unavailable") or []:
        notes.append(f"Sensitive attribute {name!r} was not in the data: fairness across it was not assessed.")
    for name, table in sorted((card.get("fairness") or {}).items()):
        dp = table.get("demographic_parity_diff")
        eo = table.get("equalized_odds_diff")
        if dp is not None and dp > 0.1:
            notes.append(f"Selection rates differ by {dp:.3f} between groups of {name!r} (demographic parity).")
        if eo is not None and eo > 0.1:
            notes.append(f"Error rates differ by {eo:.3f} between groups of {name!r} (equalised odds).")
        small = [g["group"] for g in table.get("groups", []) if not g.get("compared", True)]
        if small:
            notes.append(f"Groups of {name!r} too small to compare: {', '.join(map(str, small))}.")
    if card.get("importance") is None:
        notes.append("The chosen estimator exposes no feature importances.")
    return notes + list(STATIC_LIMITATIONS)


def build_card(ctx: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """(card record, figures as SVG text) for the chosen candidate of a run context."""
    from engine.evaluate import plots
    from engine.evaluate.metrics import scalar_metrics
    from engine.evaluate.stage import _y

    report = ctx.state["evaluation"]
    chosen_rec = ctx.state["chosen_record"]
    cand = ctx.state["chosen"]
    task = report["task"]
    X_train = ctx.state["X"].get("train")
    n_features = int(X_train.shape[1]) if X_train is not None else int(ctx.state["X"]["valid"].shape[1])
    features = ctx.state.get("features")
    names = feature_names(features, n_features)
    feat_report = None
    if features is not None and callable(getattr(features, "report", None)):
        feat_report = jsonable(features.report())
    splits = {k: _split_summary(_y(ctx, k), task) for k in ("train", "valid", "test")
              if k in ctx.state["ysplit"]}
    from engine.registry.package import registered_name

    registered = registered_name(ctx.cfg)
    test = report.get("test", {}).get("metrics", {})
    kpi_cfg = report["kpi"]
    kpi_results = []
    spec = ctx.state.get("kpi_spec")
    measured = {**scalar_metrics(chosen_rec["valid"]), **(chosen_rec.get("fairness_valid") or {})}
    if chosen_rec.get("latency_ms_per_1000") is not None and spec is not None and spec.needs_latency:
        measured["latency_ms_per_1000"] = chosen_rec["latency_ms_per_1000"]
    for t in (spec.thresholds if spec is not None else ()):
        kpi_results.append({"kpi": t.text, "valid": measured.get(t.metric), "test": test.get(t.metric),
                            "passed": t.passes(measured.get(t.metric))})
    constraints = []
    if kpi_cfg.get("interpretable"):
        constraints.append({"constraint": "interpretable", "passed": bool(cand.interpretable)})
    for key, metric in (("max_latency_ms_per_1000", "latency_ms_per_1000"),
                        ("max_demographic_parity_diff", "demographic_parity_diff"),
                        ("max_equalized_odds_diff", "equalized_odds_diff")):
        if kpi_cfg.get(key) is not None:
            v = measured.get(metric)
            constraints.append({"constraint": f"{key} {kpi_cfg[key]:g}", "valid": v,
                                "passed": v is not None and v <= kpi_cfg[key]})
    keep_latency = spec is not None and spec.needs_latency
    card: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model": {"registered_name": registered, "candidate": cand.name, "library": cand.library,
                  "task": task, "interpretable": bool(cand.interpretable), "params": jsonable(dict(cand.params)),
                  "threshold": chosen_rec.get("threshold"), "n_features": n_features},
        "data": {"target": ctx.state.get("target"), "positive_label": jsonable(ctx.state.get("positive_label")),
                 "splits": splits, "datasets": jsonable(dict(ctx.manifest.data.get("datasets") or {}))},
        "features": {"used": names, "report": feat_report, "excluded": jsonable(ctx.state.get("excluded")),
                     "sensitive": report.get("sensitive")},
        "candidates": [{"name": r["name"], "library": r["library"], "interpretable": r["interpretable"],
                        "cv": r.get("cv"), "valid": scalar_metrics(r["valid"]),
                        **({"latency_ms_per_1000": r.get("latency_ms_per_1000")} if keep_latency else {}),
                        "threshold": (r.get("threshold") or {}).get("threshold"),
                        "kpi_passed": r["kpi"]["passed"], "failures": [f["message"] for f in r["kpi"]["failures"]],
                        "chosen": r["name"] == cand.name} for r in report["candidates"]],
        "kpis": {"config": kpi_cfg, "results": kpi_results, "constraints": constraints},
        "evaluation": {"valid": scalar_metrics(chosen_rec["valid"]), "test": test,
                       "test_rows": report.get("test", {}).get("rows", 0)},
        "fairness": report.get("test", {}).get("fairness") or {},
        "importance": importances(cand.estimator, names),
    }
    card["limitations"] = limitations(card)
    card = jsonable(card)
    figures = _figures(ctx, card, plots)
    return card, figures


def _figures(ctx: Any, card: dict[str, Any], plots: Any) -> dict[str, str]:
    from engine.evaluate.stage import _y

    figs: dict[str, str] = {}
    test = card["evaluation"]["test"]
    s = ctx.state.get("test_scores")
    y = _y(ctx, "test") if "test" in ctx.state["ysplit"] else np.zeros(0)
    if card["model"]["task"] == "binary" and s is not None and len(s) and y.size:
        if test.get("roc_auc") is not None:
            figs["roc"] = plots.roc_svg(y, s, test["roc_auc"])
        if test.get("pr_auc") is not None:
            figs["pr"] = plots.pr_svg(y, s, test["pr_auc"])
        figs["calibration"] = plots.calibration_svg(test["calibration"])
        labels = _label_names(ctx)
        figs["confusion"] = plots.confusion_svg(test["confusion"], labels, test.get("threshold"))
    elif s is not None and len(s) and y.size:
        figs["residuals"] = plots.residual_svg(y, s)
    imp = card.get("importance")
    if imp:
        figs["importance"] = plots.importance_svg([f["name"] for f in imp["features"]],
                                                  [f["value"] for f in imp["features"]], imp["kind"])
    return figs


def _label_names(ctx: Any) -> tuple[str, str]:
    labels = ctx.state.get("labels")
    if isinstance(labels, dict) and "0" in labels and "1" in labels:
        return str(labels["0"]), str(labels["1"])
    pos = ctx.state.get("positive_label")
    return ("negative", "positive") if pos is None else (f"not {pos}", str(pos))


# ------------------------------------------------------------------------------------------ html
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d2430;
background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde2ea;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #dde2ea;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f7} td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#17703a;font-weight:600} .fail{color:#b42318;font-weight:600} .chosen{background:#eef6ff}
.figs{display:flex;flex-wrap:wrap;gap:12px} .figs figure{margin:0;border:1px solid #dde2ea;padding:6px}
.figs svg{max-width:100%;height:auto} .muted{color:#5b6576} code{background:#f0f3f7;padding:0 3px}
ul{margin:4px 0 12px 20px;padding:0}
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "&mdash;"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return _e(v)


def _verdict(ok: bool) -> str:
    return '<span class="pass">pass</span>' if ok else '<span class="fail">fail</span>'


def _table(head: list[str], rows: list[list[str]], row_class: list[str] | None = None) -> str:
    h = "".join(f"<th>{_e(c)}</th>" for c in head)
    body = []
    for i, r in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        body.append(f"<tr{cls}>" + "".join(r) + "</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _td(v: Any, num: bool = False) -> str:
    return f'<td class="num">{_fmt(v)}</td>' if num else f"<td>{_fmt(v)}</td>"


def _kv(d: dict[str, Any]) -> str:
    return _table(["key", "value"], [[_td(k), _td(_short(v))] for k, v in d.items()])


def _short(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        import json

        text = json.dumps(v, sort_keys=True)
        return text if len(text) <= 300 else text[:297] + "..."
    return v


def _generic(obj: Any) -> str:
    """A readable rendering of a nested record (feature report, exclusions) of unknown shape."""
    if obj is None:
        return '<p class="muted">none</p>'
    if isinstance(obj, dict):
        flat = all(not isinstance(v, (dict, list)) or len(str(v)) < 120 for v in obj.values())
        if flat:
            return _kv(obj)
        parts = []
        for k, v in obj.items():
            parts.append(f"<h3>{_e(k)}</h3>{_generic(v)}")
        return "".join(parts)
    if isinstance(obj, list):
        if obj and all(isinstance(x, dict) for x in obj):
            keys = sorted({k for x in obj for k in x})
            return _table(keys, [[_td(_short(x.get(k))) for k in keys] for x in obj])
        return "<ul>" + "".join(f"<li>{_e(_short(x))}</li>" for x in obj) + "</ul>"
    return f"<p>{_e(obj)}</p>"


def _columns_table(report: Any) -> str:
    """Used / dropped raw columns and why, from the feature pipeline report's ``columns`` record."""
    cols = report.get("columns") if isinstance(report, dict) else None
    if not isinstance(cols, dict) or not cols:
        return ""
    rows = []
    for name in sorted(cols):
        c = cols[name] if isinstance(cols[name], dict) else {}
        why = c.get("reason") or ""
        if c.get("detail"):
            why = f"{why}: {c['detail']}" if why else str(c["detail"])
        if c.get("encoder"):
            why = (why + "; " if why else "") + f"{c['encoder']} ({c.get('encoder_reason') or ''})"
        dropped = c.get("dropped_features") or {}
        if dropped:
            why = (why + "; " if why else "") + "dropped " + ", ".join(f"{k} ({v})" for k, v in sorted(dropped.items()))
        feats = c.get("features") or []
        rows.append([_td(name), _td(c.get("kind")), f'<td class="{"pass" if c.get("fate") == "used" else "fail"}">'
                     f'{_e(c.get("fate"))}</td>', _td(len(feats), True), _td(why)])
    return "<h3>Raw columns: used and dropped</h3>" + _table(["column", "kind", "fate", "features", "why"], rows)


def render_html(card: dict[str, Any], figures: dict[str, str]) -> str:
    """The card as one self-contained HTML page."""
    m, d = card["model"], card["data"]
    task = m["task"]
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           f"<title>Model card: {_e(m.get('registered_name') or m['candidate'])}</title>",
           f"<style>{_CSS}</style></head><body><main>",
           f"<h1>Model card: {_e(m.get('registered_name') or m['candidate'])}</h1>",
           f'<p class="muted">{_e(task)} model &middot; candidate <code>{_e(m["candidate"])}</code> '
           f"({_e(m['library'])})</p>"]
    # chosen model
    out.append("<h2>Chosen model</h2>")
    thr = m.get("threshold") or {}
    rows = [["candidate", m["candidate"]], ["library", m["library"]], ["interpretable", m["interpretable"]],
            ["input features", m["n_features"]]]
    if task == "binary":
        rows += [["decision threshold", thr.get("threshold")], ["threshold chosen by", thr.get("method")],
                 ["expected cost per row (validation)", thr.get("expected_cost")]]
    out.append(_table(["property", "value"], [[_td(a), _td(b, isinstance(b, (int, float)) and not isinstance(b, bool))]
                                              for a, b in rows]))
    out.append("<h3>Hyper-parameters</h3>" + _kv(m.get("params") or {}))
    # KPIs
    out.append("<h2>KPIs</h2>")
    k = card["kpis"]
    if k["results"]:
        out.append(_table(["KPI", "validation", "test", "verdict"],
                          [[_td(r["kpi"]), _td(r["valid"], True), _td(r["test"], True),
                            f"<td>{_verdict(r['passed'])}</td>"] for r in k["results"]]))
    else:
        out.append('<p class="muted">No KPI thresholds configured.</p>')
    if k["constraints"]:
        out.append(_table(["constraint", "validation", "verdict"],
                          [[_td(c["constraint"]), _td(c.get("valid"), True), f"<td>{_verdict(c['passed'])}</td>"]
                           for c in k["constraints"]]))
    out.append(f'<p class="muted">Selection: best <code>{_e(k["config"]["primary"])}</code> '
               f'({"higher" if k["config"]["maximize"] else "lower"} is better) on the validation split among '
               f"candidates meeting every KPI.</p>")
    # performance
    out.append("<h2>Performance</h2>")
    ev = card["evaluation"]
    keys = sorted(set(ev.get("valid") or {}) | {k2 for k2, v in (ev.get("test") or {}).items()
                                                   if isinstance(v, (int, float)) and not isinstance(v, bool)})
    keys = [x for x in keys if x != "threshold"]
    out.append(_table(["metric", "validation", f"test ({ev.get('test_rows', 0):,} rows)"],
                      [[_td(x), _td((ev.get("valid") or {}).get(x), True), _td((ev.get("test") or {}).get(x), True)]
                       for x in keys]))
    order = [("roc", "ROC"), ("pr", "Precision-recall"), ("calibration", "Calibration"),
             ("confusion", "Confusion matrix"), ("residuals", "Predicted vs actual")]
    figs = [f'<figure>{figures[n]}<figcaption class="muted">{_e(t)}</figcaption></figure>'
            for n, t in order if n in figures]
    if figs:
        out.append('<div class="figs">' + "".join(figs) + "</div>")
    # candidates
    out.append("<h2>Candidates</h2>")
    metric_keys = [k["config"]["primary"]] + [x for x in ("roc_auc", "pr_auc", "log_loss", "f1", "rmse", "r2")
                                              if x != k["config"]["primary"]]
    cands = card["candidates"]
    metric_keys = [x for x in metric_keys if any(x in c["valid"] for c in cands)]
    has_latency = any("latency_ms_per_1000" in c for c in cands)
    head = ["candidate", "library", "interpretable", "CV score"] + [f"valid {x}" for x in metric_keys] + \
        (["latency ms / 1,000 rows"] if has_latency else []) + ["KPIs"]
    rows2, classes = [], []
    for c in cands:
        cv = c.get("cv") or {}
        cv_text = "&mdash;"
        if cv.get("mean") is not None:
            cv_text = f"{_e(cv.get('metric', ''))} {_fmt(cv.get('mean'))} ± {_fmt(cv.get('std'))}"
        r = [_td(c["name"] + (" (chosen)" if c["chosen"] else "")), _td(c["library"]), _td(c["interpretable"]),
             f"<td>{cv_text}</td>"] + [_td(c["valid"].get(x), True) for x in metric_keys]
        if has_latency:
            r.append(_td(c.get("latency_ms_per_1000"), True))
        verdict = _verdict(True) if c["kpi_passed"] else _verdict(False) + "<br>" + "<br>".join(
            _e(f) for f in c["failures"])
        r.append(f"<td>{verdict}</td>")
        rows2.append(r)
        classes.append("chosen" if c["chosen"] else "")
    out.append(_table(head, rows2, classes))
    # data
    out.append("<h2>Data</h2>")
    out.append(f"<p>Target <code>{_e(d.get('target'))}</code>"
               + (f", positive label <code>{_e(d.get('positive_label'))}</code>" if d.get("positive_label") is not None
                  else "") + ".</p>")
    sk = ["rows", "positives", "positive_rate"] if task == "binary" else ["rows", "mean", "std"]
    out.append(_table(["split"] + sk, [[_td(s)] + [_td(v.get(x), True) for x in sk] for s, v in d["splits"].items()]))
    if d.get("datasets"):
        out.append("<h3>Datasets (SHA-256)</h3>" + _table(
            ["dataset", "rows", "columns", "sha256"],
            [[_td(n), _td(v.get("rows"), True), _td(v.get("columns"), True),
              f"<td><code>{_e(v.get('sha256'))}</code></td>"] for n, v in d["datasets"].items()]))
    # features
    f = card["features"]
    out.append("<h2>Features</h2>")
    out.append(f"<p>{len(f['used'])} features enter the estimator.</p>")
    out.append("<details><summary>Feature names</summary><ul>" + "".join(f"<li><code>{_e(x)}</code></li>"
                                                                       for x in f["used"]) + "</ul></details>")
    out.append(_columns_table(f.get("report")))
    out.append("<h3>Excluded before feature engineering</h3>" + _generic(f.get("excluded")))
    if f.get("report") is not None:
        out.append("<details><summary>Full feature pipeline report</summary>" + _generic(f["report"])
                   + "</details>")
    if card.get("importance"):
        imp = card["importance"]
        out.append(f"<h3>Feature importance ({_e(imp['kind'])})</h3>")
        if "importance" in figures:
            out.append(f'<div class="figs"><figure>{figures["importance"]}</figure></div>')
    # fairness
    out.append("<h2>Fairness (test split)</h2>")
    sens = f.get("sensitive") or {}
    if card.get("fairness"):
        for name, t in card["fairness"].items():
            out.append(f"<h3>{_e(name)}</h3>")
            if task == "binary":
                out.append(f"<p>Demographic parity difference {_fmt(t.get('demographic_parity_diff'))}, "
                           f"equalised-odds difference {_fmt(t.get('equalized_odds_diff'))}.</p>")
                cols = ["group", "n", "base_rate", "selection_rate", "tpr", "fpr", "auc", "compared"]
            else:
                cols = ["group", "n", "mean_target", "mean_prediction", "rmse", "mae", "compared"]
            out.append(_table(cols, [[_td(g.get(c), c not in ("group", "compared")) for c in cols]
                                     for g in t.get("groups", [])]))
    else:
        out.append('<p class="muted">No sensitive attribute was available to evaluate.</p>')
    if sens.get("unavailable"):
        out.append(f"<p class=\"muted\">Not in the data: {_e(', '.join(sens['unavailable']))}.</p>")
    # limitations
    out.append("<h2>Known limitations</h2><ul>" + "".join(f"<li>{_e(x)}</li>" for x in card["limitations"])
               + "</ul>")
    out.append("</main></body></html>\n")
    return "\n".join(out)
