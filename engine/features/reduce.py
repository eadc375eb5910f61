"""Fit PCA or truncated SVD as plain matrices; the runtime applies ``(X - mean) @ components.T``.

PCA centres the features (``mean`` = their training means); truncated SVD does not (``mean`` = 0).
Components are the leading right singular vectors, computed from the eigen-decomposition of the
(centred) Gram matrix in float64, each with its sign fixed so that its largest-magnitude coefficient
is positive: the same data always gives the same matrices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.features.select import gram as gram_product


@dataclass(frozen=True)
class ReduceFit:
    method: str
    mean: np.ndarray  # (features,)
    components: np.ndarray  # (n_components, features)
    explained_variance_ratio: np.ndarray  # (n_components,)


def fit_reduce(X: np.ndarray, method: str, n_components: int) -> ReduceFit:
    """Fit ``method`` ("pca" or "svd") with at most ``n_components`` components on ``X`` (rows, features)."""
    if method not in ("pca", "svd"):
        raise ValueError(f"method must be pca or svd, got {method!r}")
    Xd = np.asarray(X, dtype=np.float64)
    m, k = Xd.shape
    mean = Xd.mean(axis=0) if (method == "pca" and m) else np.zeros(k)
    Z = Xd - mean
    gram = gram_product(Z)
    w, V = np.linalg.eigh(gram)
    order = np.argsort(w)[::-1]
    c = max(0, min(int(n_components), k, m))
    w = np.clip(w[order][:c], 0.0, None)
    comps = V[:, order][:, :c].T.copy()
    for i in range(c):
        j = int(np.argmax(np.abs(comps[i])))
        if comps[i, j] < 0:
            comps[i] = -comps[i]
    total = float(np.trace(gram)) if k else 0.0
    ratio = w / total if total > 0 else np.zeros(c)
    return ReduceFit(method, mean, comps, ratio)
