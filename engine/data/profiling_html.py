"""profile.html: the profile as one self-contained page (inline CSS and SVG, no scripts, no fetches).

Every chart is drawn from numbers already in the profile dict (histogram counts, top categories,
correlation matrices), never from the raw rows, so the page costs the same for 1,000 or 10M rows.
The output is a pure function of the dict: same profile, same bytes. Every user string is escaped.
"""
from __future__ import annotations

import html
from typing import Any

#: Heatmaps show at most this many columns (profile.json keeps the full matrices).
MAX_HEATMAP = 60

_CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1f2933;
background:#f5f7fa}
header{background:#1f2933;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#cbd2d9}
nav{padding:8px 28px;background:#e4e7eb;position:sticky;top:0;z-index:1}
nav a{margin-right:14px;color:#1f2933;text-decoration:none;font-weight:600}
main{padding:8px 28px 40px;max-width:1400px}
section{background:#fff;border-radius:6px;padding:14px 18px;margin:16px 0;box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:18px;margin:0 0 10px}
h3{font-size:16px;margin:0 0 8px}
table{border-collapse:collapse;font-size:13px}
th,td{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
thead th{border-bottom:1px solid #cbd2d9}
.kind{display:inline-block;font-size:11px;padding:1px 6px;border-radius:8px;background:#e4e7eb;margin-left:6px;
font-weight:600;vertical-align:middle}
.warn{color:#8a1c1c}
.badge{display:inline-block;font-size:11px;padding:1px 6px;border-radius:8px;background:#fde2e2;color:#8a1c1c;
margin-right:6px;font-weight:600}
.col{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.col article{border-top:1px solid #e4e7eb;padding-top:10px;margin-top:10px;width:100%}
.muted{color:#7b8794}
.toc{columns:4 180px;font-size:13px;margin:0;padding-left:18px}
svg text{font-family:inherit}
"""


def render_html(profile: dict[str, Any]) -> str:
    """The profile as a self-contained HTML page (a string).

    Parameters
    ----------
    profile : dict
        What :func:`engine.data.profiling.profile_frame` returned.
    """
    ov = profile["overview"]
    t = profile["target"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>Data profile: {_e(t['name'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>Data profile</h1>",
        f"<p>{_int(ov['rows'])} rows &middot; {_int(ov['columns'])} columns &middot; target "
        f"<b>{_e(t['name'])}</b> ({_e(t['task'])})</p></header>",
        '<nav><a href="#overview">Overview</a><a href="#warnings">Warnings ('
        f"{len(profile['warnings'])})</a><a href=\"#target\">Target</a><a href=\"#correlations\">Correlations</a>"
        '<a href="#associations">Associations</a><a href="#columns">Columns</a></nav><main>',
        _overview(profile),
        _warnings(profile),
        _target(profile),
        _correlations(profile),
        _associations(profile),
        _columns(profile),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------------
def _overview(p: dict[str, Any]) -> str:
    ov = p["overview"]
    kinds = ", ".join(f"{_e(k)} {v}" for k, v in ov["kinds"].items() if v)
    rows = [
        ("Rows", _int(ov["rows"])),
        ("Columns", f"{_int(ov['columns'])} ({kinds})"),
        ("Missing cells", f"{_int(ov['missing_cells'])} ({_pct(ov['missing_share'])})"),
        ("Duplicate rows", f"{_int(ov['duplicate_rows'])} ({_pct(ov['duplicate_share'])})"),
        ("Warnings", _int(len(p["warnings"]))),
        ("Rows sampled for ranks and associations", _int(ov["sample_rows"])),
    ]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<section id="overview"><h2>Overview</h2><table>{body}</table></section>'


def _warnings(p: dict[str, Any]) -> str:
    ws = p["warnings"]
    if not ws:
        return '<section id="warnings"><h2>Warnings</h2><p class="muted">None.</p></section>'
    items = "".join(f'<li><span class="badge">{_e(w["type"])}</span>{_e(w["message"])}</li>' for w in ws)
    return f'<section id="warnings"><h2>Warnings</h2><ul>{items}</ul></section>'


def _target(p: dict[str, Any]) -> str:
    t = p["target"]
    out = [f'<section id="target"><h2>Target: {_e(t["name"])} <span class="kind">{_e(t["task"])}</span></h2>',
           '<div class="col">']
    if t["task"] == "binary":
        bal = t.get("balance") or []
        out.append(_hbars([b["value"] for b in bal], [b["count"] for b in bal], [b["share"] for b in bal]))
        out.append(f"<table><tr><th>Minority share</th><td>{_pct(t.get('minority_share'))}</td></tr>"
                   f"<tr><th>Minority per majority row</th><td>{_num(t.get('minority_ratio'))}</td></tr></table>")
    else:
        d = t.get("distribution") or {}
        h = d.get("histogram")
        if h:
            out.append(_histogram(h["edges"], h["counts"]))
        q = d.get("quantiles") or {}
        rows = [("count", _int(d.get("count"))), ("mean", _num(d.get("mean"))), ("std", _num(d.get("std"))),
                ("min", _num(d.get("min")))] + [(k, _num(v)) for k, v in q.items()] + [("max", _num(d.get("max")))]
        out.append(_kv_table(rows))
    out.append("</div>")
    ta = sorted(p.get("target_association") or [], key=lambda a: (-(a["value"] or 0), a["column"]))
    if ta:
        body = "".join(
            f"<tr><td>{_e(a['column'])}</td><td>{_e(a['kind'])}</td><td>{_e(a['metric'])}</td>"
            f"<td class=\"n\">{_num(a['value'])}</td>"
            f"<td class=\"warn\">{'likely leakage' if a['leakage'] else ''}</td></tr>"
            for a in ta)
        out.append("<h3>Each feature against the target</h3><table><thead><tr><th>column</th><th>kind</th>"
                   f"<th>measure</th><th>value</th><th></th></tr></thead><tbody>{body}</tbody></table>")
    out.append("</section>")
    return "".join(out)


def _correlations(p: dict[str, Any]) -> str:
    c = p["correlations"]
    cols = c["columns"]
    out = ['<section id="correlations"><h2>Correlations (numeric)</h2>']
    if len(cols) < 2:
        out.append('<p class="muted">Fewer than two numeric columns.</p></section>')
        return "".join(out)
    out.append(f'<p class="muted">Pairwise-complete, on {_int(c.get("sample_rows"))} sampled rows.</p>'
               '<div class="col">')
    out.append("<div><h3>Pearson</h3>" + _heatmap(cols, c["pearson"], -1.0, 1.0) + "</div>")
    out.append("<div><h3>Spearman</h3>" + _heatmap(cols, c["spearman"], -1.0, 1.0) + "</div>")
    out.append("</div></section>")
    return "".join(out)


def _associations(p: dict[str, Any]) -> str:
    a = p["associations"]
    cols = a["columns"]
    out = ['<section id="associations"><h2>Associations (categorical, Cram&eacute;r&#x27;s V)</h2>']
    if len(cols) < 2:
        out.append('<p class="muted">Fewer than two categorical columns.</p></section>')
        return "".join(out)
    out.append(f'<p class="muted">On {_int(a.get("sample_rows"))} sampled rows; levels beyond the '
               f'{_int(a.get("max_levels"))} most frequent pooled.</p>')
    out.append(_heatmap(cols, a["cramers_v"], 0.0, 1.0))
    m = a["cramers_v"]
    pairs = sorted(((m[i][j], cols[i], cols[j]) for i in range(len(cols)) for j in range(i + 1, len(cols))
                    if m[i][j] is not None), key=lambda x: (-x[0], x[1], x[2]))[:20]
    body = "".join(f"<tr><td>{_e(x)}</td><td>{_e(y)}</td><td class=\"n\">{_num(v)}</td></tr>" for v, x, y in pairs)
    out.append("<h3>Strongest pairs</h3><table><thead><tr><th>column</th><th>column</th><th>V</th></tr></thead>"
               f"<tbody>{body}</tbody></table></section>")
    return "".join(out)


def _columns(p: dict[str, Any]) -> str:
    cols = p["columns"]
    toc = "".join(f'<li><a href="#col-{i}">{_e(c["name"])}</a></li>' for i, c in enumerate(cols))
    out = [f'<section id="columns"><h2>Columns</h2><ol class="toc">{toc}</ol>']
    for i, c in enumerate(cols):
        out.append(f'<article id="col-{i}"><h3>{_e(c["name"])}<span class="kind">{_e(c["kind"])}</span>'
                   f'<span class="kind">{_e(c["dtype"])}</span></h3><div class="col">')
        rows = [("count", _int(c["count"])),
                ("missing", f"{_int(c['missing']['count'])} ({_pct(c['missing']['share'])})"),
                ("distinct", _int(c["distinct"]))]
        chart = ""
        if "quantiles" in c:  # numeric
            rows += [("mean", _num(c["mean"])), ("std", _num(c["std"])), ("min", _num(c["min"]))]
            rows += [(k, _num(v)) for k, v in c["quantiles"].items()]
            rows += [("max", _num(c["max"])), ("zeros", _int(c["zeros"])), ("negatives", _int(c["negatives"])),
                     ("infinite", _int(c["infinite"]))]
            if c.get("dominant_share") is not None:
                rows.append(("dominant value", f"{_num(c['dominant_value'])} ({_pct(c['dominant_share'])})"))
            h = c.get("histogram")
            chart = _histogram(h["edges"], h["counts"]) if h else ""
        elif "top" in c:  # categorical, text, id, binary target
            if c.get("length"):
                ln = c["length"]
                rows.append(("length min / mean / max", f"{_int(ln['min'])} / {_num(ln['mean'])} / {_int(ln['max'])}"))
            top = c["top"]
            chart = _hbars([x["value"] for x in top], [x["count"] for x in top], [x["share"] for x in top])
        else:  # datetime
            rows += [("min", _e(c.get("min") or "")), ("max", _e(c.get("max") or ""))]
            h = c.get("histogram")
            if h:
                chart = _bars(h["labels"], h["counts"], h["unit"])
        out.append(_kv_table(rows) + chart + "</div></article>")
    out.append("</section>")
    return "".join(out)


# ------------------------------------------------------------------------------------------------
# SVG charts
# ------------------------------------------------------------------------------------------------
def _histogram(edges: list[Any], counts: list[int], width: int = 420, height: int = 170) -> str:
    """Vertical bars of a histogram; hovering a bar shows its range and count."""
    n = len(counts)
    if n == 0:
        return ""
    top = max(max(counts), 1)
    left, bottom, plot_w, plot_h = 46, 22, width - 56, height - 34
    bw = plot_w / n
    bars = []
    for i, c in enumerate(counts):
        h = plot_h * c / top
        x = left + i * bw
        bars.append(f'<rect x="{x:.1f}" y="{8 + plot_h - h:.1f}" width="{max(bw - 1, 0.5):.1f}" height="{h:.1f}" '
                    f'fill="#3e7cb1"><title>[{_num(edges[i])}, {_num(edges[i + 1])}{"]" if i == n - 1 else ")"}: '
                    f"{_int(c)}</title></rect>")
    axis = (f'<line x1="{left}" y1="{8 + plot_h}" x2="{left + plot_w}" y2="{8 + plot_h}" stroke="#7b8794"/>'
            f'<text x="{left - 4}" y="16" font-size="10" text-anchor="end">{_int(top)}</text>'
            f'<text x="{left - 4}" y="{8 + plot_h}" font-size="10" text-anchor="end">0</text>'
            f'<text x="{left}" y="{height - 6}" font-size="10">{_num(edges[0])}</text>'
            f'<text x="{left + plot_w}" y="{height - 6}" font-size="10" text-anchor="end">{_num(edges[-1])}</text>')
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="histogram">{"".join(bars)}{axis}</svg>')


def _bars(labels: list[str], counts: list[int], unit: str, width: int = 420, height: int = 170) -> str:
    """Vertical bars with a label per bar (dates by month or year)."""
    n = len(counts)
    if n == 0:
        return ""
    top = max(max(counts), 1)
    left, plot_w, plot_h = 46, width - 56, height - 34
    bw = plot_w / n
    bars = "".join(
        f'<rect x="{left + i * bw:.1f}" y="{8 + plot_h - plot_h * c / top:.1f}" width="{max(bw - 1, 0.5):.1f}" '
        f'height="{plot_h * c / top:.1f}" fill="#3e7cb1"><title>{_e(labels[i])}: {_int(c)}</title></rect>'
        for i, c in enumerate(counts))
    axis = (f'<line x1="{left}" y1="{8 + plot_h}" x2="{left + plot_w}" y2="{8 + plot_h}" stroke="#7b8794"/>'
            f'<text x="{left - 4}" y="16" font-size="10" text-anchor="end">{_int(top)}</text>'
            f'<text x="{left}" y="{height - 6}" font-size="10">{_e(labels[0])}</text>'
            f'<text x="{left + plot_w}" y="{height - 6}" font-size="10" text-anchor="end">{_e(labels[-1])}</text>')
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="counts by {_e(unit)}">{bars}{axis}</svg>')


def _hbars(labels: list[Any], counts: list[int], shares: list[Any], width: int = 420) -> str:
    """Horizontal bars: one per category, with its count and share."""
    n = len(counts)
    if n == 0:
        return ""
    row, label_w, num_w = 18, 130, 110
    height = n * row + 6
    bar_w = width - label_w - num_w
    top = max(max(counts), 1)
    out = []
    for i, (lab, c, s) in enumerate(zip(labels, counts, shares)):
        y = 3 + i * row
        text = _e(_clip(str(lab), 20))
        w = bar_w * c / top
        out.append(f'<text x="{label_w - 6}" y="{y + 12}" font-size="11" text-anchor="end">{text}<title>{_e(lab)}'
                   f"</title></text>"
                   f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row - 5}" fill="#3e7cb1"/>'
                   f'<text x="{label_w + w + 4:.1f}" y="{y + 12}" font-size="11">{_int(c)} ({_pct(s)})</text>')
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="category counts">{"".join(out)}</svg>')


def _heatmap(labels: list[str], matrix: list[list[Any]], vmin: float, vmax: float) -> str:
    """A labelled matrix of coloured cells (blue negative, red positive; hover for the value)."""
    k = min(len(labels), MAX_HEATMAP)
    if k == 0:
        return ""
    cell = max(10, min(28, 560 // k))
    label_w = 120
    size = label_w + k * cell
    out = []
    for i in range(k):
        name = _e(_clip(labels[i], 18))
        out.append(f'<text x="{label_w - 4}" y="{label_w + i * cell + cell * 0.7:.1f}" font-size="10" '
                   f'text-anchor="end">{name}</text>')
        x = label_w + i * cell + cell * 0.7
        out.append(f'<text x="{x:.1f}" y="{label_w - 4}" font-size="10" transform="rotate(-60 {x:.1f} '
                   f'{label_w - 4})">{name}</text>')
        for j in range(k):
            v = matrix[i][j]
            out.append(f'<rect x="{label_w + j * cell}" y="{label_w + i * cell}" width="{cell - 1}" '
                       f'height="{cell - 1}" fill="{_color(v, vmin, vmax)}"><title>{_e(labels[i])} / '
                       f'{_e(labels[j])}: {_num(v)}</title></rect>')
            if cell >= 26 and v is not None:
                light = abs(v) > 0.6 * max(abs(vmin), abs(vmax))
                tx, ty = label_w + j * cell + cell / 2 - 0.5, label_w + i * cell + cell * 0.62
                out.append(f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="8" text-anchor="middle" '
                           f'fill="{"#fff" if light else "#1f2933"}">{v:.2f}</text>')
    note = (f'<p class="muted">First {k} of {len(labels)} columns shown; profile.json has all.</p>'
            if len(labels) > k else "")
    return (f'<svg width="{size}" height="{size}" viewBox="0 0 {size} {size}" role="img" aria-label="heatmap">'
            f'{"".join(out)}</svg>{note}')


def _color(v: Any, vmin: float, vmax: float) -> str:
    if v is None:
        return "#e4e7eb"
    if vmin < 0:  # diverging: blue (-1), white (0), red (+1)
        t = max(-1.0, min(1.0, v / max(abs(vmin), vmax)))
        end = (178, 24, 43) if t > 0 else (33, 102, 172)
        a = abs(t)
    else:
        a = max(0.0, min(1.0, (v - vmin) / (vmax - vmin)))
        end = (33, 102, 172)
    r, g, b = (round(255 + (e - 255) * a) for e in end)
    return f"#{r:02x}{g:02x}{b:02x}"


# ------------------------------------------------------------------------------------------------
# formatting
# ------------------------------------------------------------------------------------------------
def _kv_table(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f'<tr><th>{k}</th><td class="n">{v}</td></tr>' for k, v in rows) + "</table>"


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def _int(v: Any) -> str:
    return "&ndash;" if v is None else f"{int(v):,}"


def _num(v: Any) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    return _e(v)


def _pct(v: Any) -> str:
    return "&ndash;" if v is None else f"{100 * v:.2f}%"
