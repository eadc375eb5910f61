"""Figures for the model card as inline SVG text: ROC, precision-recall, calibration, confusion matrix,
feature importances.

Rendered off-screen by Matplotlib as SVG with a fixed hash salt and no date, so the same inputs
give the same bytes (``trident reproduce`` compares file hashes).
"""
from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

_RC = {"svg.hashsalt": "trident", "svg.fonttype": "none", "font.size": 9, "axes.grid": True,
       "grid.alpha": 0.3, "figure.dpi": 96}


def _render(draw: Callable[[Any], None], size: tuple[float, float] = (4.2, 3.4)) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    with plt.rc_context(_RC):
        fig = Figure(figsize=size)
        ax = fig.add_subplot(1, 1, 1)
        draw(ax)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    start = text.find("<svg")
    text = text[start:] if start >= 0 else text
    a, b = text.find("<metadata>"), text.find("</metadata>")
    if a >= 0 and b > a:  # RDF boilerplate (creator, format): nothing a reader needs
        text = text[:a] + text[b + len("</metadata>"):].lstrip("\n")
    return text


def roc_svg(y: np.ndarray, p: np.ndarray, auc: float) -> str:
    """ROC curve with the chance diagonal."""
    yy, pp = np.asarray(y, np.float64), np.asarray(p, np.float64)
    order = np.argsort(-pp, kind="mergesort")
    ys, ps = yy[order], pp[order]
    last = np.r_[np.flatnonzero(np.diff(ps)), ys.size - 1]
    tps = np.cumsum(ys)[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / max(ys.sum(), 1)]
    fpr = np.r_[0.0, fps / max(ys.size - ys.sum(), 1)]

    def draw(ax: Any) -> None:
        ax.plot(fpr, tpr, color="#1f5fa8", lw=1.6, label=f"model (AUC {auc:.3f})")
        ax.plot([0, 1], [0, 1], color="#888888", lw=1, ls="--", label="chance")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test split)",
               xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="lower right")

    return _render(draw)


def pr_svg(y: np.ndarray, p: np.ndarray, ap: float) -> str:
    """Precision-recall curve with the positive rate as the no-skill line."""
    yy, pp = np.asarray(y, np.float64), np.asarray(p, np.float64)
    order = np.argsort(-pp, kind="mergesort")
    ys, ps = yy[order], pp[order]
    last = np.r_[np.flatnonzero(np.diff(ps)), ys.size - 1]
    tps = np.cumsum(ys)[last]
    precision = tps / (last + 1)
    recall = tps / max(ys.sum(), 1)
    base = float(ys.mean()) if ys.size else 0.0

    def draw(ax: Any) -> None:
        ax.step(np.r_[0.0, recall], np.r_[1.0, precision], where="post", color="#1f5fa8", lw=1.6,
                label=f"model (AP {ap:.3f})")
        ax.axhline(base, color="#888888", lw=1, ls="--", label=f"positive rate {base:.3f}")
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test split)", xlim=(0, 1),
               ylim=(0, 1.01))
        ax.legend(loc="upper right")

    return _render(draw)


def calibration_svg(bins: list[dict[str, Any]]) -> str:
    """Reliability diagram: observed positive rate against the mean predicted probability per bin."""
    full = [b for b in bins if b["count"]]
    mp = [b["mean_predicted"] for b in full]
    fp = [b["fraction_positive"] for b in full]

    def draw(ax: Any) -> None:
        ax.plot([0, 1], [0, 1], color="#888888", lw=1, ls="--", label="perfectly calibrated")
        ax.plot(mp, fp, marker="o", color="#1f5fa8", lw=1.6, label="model")
        ax.set(xlabel="mean predicted probability", ylabel="observed positive rate",
               title="Calibration (test split)", xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="upper left")

    return _render(draw)


def confusion_svg(cm: dict[str, int], labels: tuple[str, str] = ("negative", "positive"),
                  threshold: float | None = None) -> str:
    """Confusion matrix as an annotated 2x2 grid (rows: actual, columns: predicted)."""
    m = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]], dtype=np.float64)

    def draw(ax: Any) -> None:
        ax.grid(False)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=max(m.max(), 1))
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center",
                        color="white" if m[i, j] > m.max() / 2 else "black", fontsize=11)
        ax.set_xticks([0, 1], [f"pred. {labels[0]}", f"pred. {labels[1]}"])
        ax.set_yticks([0, 1], [f"actual {labels[0]}", f"actual {labels[1]}"])
        title = "Confusion matrix (test split)"
        if threshold is not None:
            title += f"\nthreshold {threshold:.3f}"
        ax.set_title(title)

    return _render(draw, (4.0, 3.4))


def importance_svg(names: list[str], values: list[float], kind: str) -> str:
    """Horizontal bars of the largest feature importances (largest on top)."""
    n = len(names)

    def draw(ax: Any) -> None:
        pos = np.arange(n)[::-1]
        ax.barh(pos, values, color="#1f5fa8")
        ax.set_yticks(pos, names)
        ax.set(xlabel=kind, title="Feature importance")
        ax.grid(axis="y", visible=False)

    return _render(draw, (5.6, max(2.0, 0.28 * n + 1.0)))


def residual_svg(y: np.ndarray, pred: np.ndarray, max_points: int = 2000) -> str:
    """Predicted against actual values (an evenly spaced subset of at most ``max_points`` rows)."""
    yy, pp = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    step = max(1, yy.size // max_points)
    ys, ps = yy[::step], pp[::step]
    lo = float(min(ys.min(), ps.min())) if ys.size else 0.0
    hi = float(max(ys.max(), ps.max())) if ys.size else 1.0

    def draw(ax: Any) -> None:
        ax.scatter(ys, ps, s=6, alpha=0.5, color="#1f5fa8", linewidths=0)
        ax.plot([lo, hi], [lo, hi], color="#888888", lw=1, ls="--")
        ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual (test split)")

    return _render(draw)
