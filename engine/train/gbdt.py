"""Trident's histogram gradient-boosted trees: scikit-learn compatible classifier and regressor.

The hot loops are Trident's kernels (:mod:`kernels.gbdt_binning`, ``gbdt_hist``, ``gbdt_split``,
``gbdt_partition``, ``gbdt_predict``, ``gbdt_loss``), each with a CPU twin and a CUDA twin. NumPy
input trains and predicts on the CPU; CuPy input trains and predicts on the GPU with the data kept on
the device (only tree bookkeeping, a few numbers per node, comes back to the host).

Model
-----
Features are cast to float32 and quantised into at most ``max_bins`` quantile bins per feature (bin
255 holds NaN). Trees are grown depth-wise to ``max_depth`` (or best-first to ``max_leaves``) on
gradient / hessian histograms with the subtraction trick; each split learns where missing values go
(the side that gains more, or the larger child when the node saw none). Leaf values are
``-learning_rate * G / (H + l2_regularization)``. The binary classifier boosts the log loss from the
log-odds of the positive rate; the regressor boosts the squared error from the mean.

Serialisation is plain data: :meth:`to_dict` returns JSON-able values and NumPy arrays, and
:meth:`from_dict` rebuilds a fitted estimator from it (no pickle).
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from engine.errors import ConfigError, DataError

__all__ = ["InputError", "ParamError", "TridentGBDTClassifier", "TridentGBDTRegressor"]

FORMAT = "trident_gbdt"
FORMAT_VERSION = 1
_TREE_KEYS = ("offsets", "feature", "threshold", "split_bin", "missing_left", "left", "right", "value", "gain", "count", "hessian")
_TREE_DTYPES = {
    "offsets": np.int64, "feature": np.int32, "threshold": np.float32, "split_bin": np.int32, "missing_left": np.uint8,
    "left": np.int32, "right": np.int32, "value": np.float64, "gain": np.float64, "count": np.int64, "hessian": np.float64,
}


class InputError(DataError, ValueError):
    """Malformed features or targets (a :class:`DataError` that scikit-learn's checks see as ValueError)."""


class ParamError(ConfigError, ValueError):
    """An invalid hyper-parameter (a :class:`ConfigError` that scikit-learn's checks see as ValueError)."""


def _is_cupy(a: Any) -> bool:
    return type(a).__module__.startswith("cupy")


def _sk_validate(est: Any, X: Any, y: Any = None, reset: bool = True, **kw: Any) -> Any:
    """scikit-learn's input validation (``validate_data``; the method before scikit-learn 1.6), its
    ValueErrors turned into :class:`InputError`."""
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:  # scikit-learn < 1.6
        def validate_data(e, *a, **k):  # noqa: ANN001, ANN202
            return e._validate_data(*a, **k)
    args = (X,) if y is None else (X, y)
    try:
        return validate_data(est, *args, reset=reset, dtype=np.float32, order="C", ensure_all_finite="allow-nan", **kw)
    except ValueError as e:
        raise InputError(str(e)) from e


class _TridentGBDT(BaseEstimator):
    """Shared fit / predict / serialisation of the classifier and the regressor."""

    _loss = "squared_error"
    _kind = "regressor"

    def __init__(
        self,
        *,
        n_estimators: int = 100,
        learning_rate: float = 0.1,
        max_depth: int | None = 6,
        max_leaves: int | None = None,
        l2_regularization: float = 0.0,
        min_child_weight: float = 1e-3,
        min_samples_leaf: int = 20,
        min_split_gain: float = 0.0,
        subsample: float = 1.0,
        colsample: float = 1.0,
        max_bins: int = 255,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-7,
        random_state: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.max_leaves = max_leaves
        self.l2_regularization = l2_regularization
        self.min_child_weight = min_child_weight
        self.min_samples_leaf = min_samples_leaf
        self.min_split_gain = min_split_gain
        self.subsample = subsample
        self.colsample = colsample
        self.max_bins = max_bins
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state

    # ---------------------------------------------------------------------------------- checks
    def _check_params(self) -> None:
        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ParamError(f"{type(self).__name__}.{name}: expected {expected}, got {getattr(self, name)!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)

        need(is_int(self.n_estimators) and self.n_estimators >= 1, "n_estimators", "an integer >= 1")
        need(isinstance(self.learning_rate, numbers.Real) and self.learning_rate > 0, "learning_rate", "a number > 0")
        need(self.max_depth is None or (is_int(self.max_depth) and self.max_depth >= 1), "max_depth", "None or an integer >= 1")
        need(self.max_leaves is None or (is_int(self.max_leaves) and self.max_leaves >= 2), "max_leaves", "None or an integer >= 2")
        if self.max_depth is None and self.max_leaves is None:
            raise ParamError(f"{type(self).__name__}: max_depth and max_leaves are both None; set at least one to bound the trees")
        need(isinstance(self.l2_regularization, numbers.Real) and self.l2_regularization >= 0, "l2_regularization", "a number >= 0")
        need(isinstance(self.min_child_weight, numbers.Real) and self.min_child_weight >= 0, "min_child_weight", "a number >= 0")
        need(is_int(self.min_samples_leaf) and self.min_samples_leaf >= 1, "min_samples_leaf", "an integer >= 1")
        need(isinstance(self.min_split_gain, numbers.Real) and self.min_split_gain >= 0, "min_split_gain", "a number >= 0")
        need(isinstance(self.subsample, numbers.Real) and 0 < self.subsample <= 1, "subsample", "a fraction in (0, 1]")
        need(isinstance(self.colsample, numbers.Real) and 0 < self.colsample <= 1, "colsample", "a fraction in (0, 1]")
        need(is_int(self.max_bins) and 2 <= self.max_bins <= 255, "max_bins", "an integer in [2, 255]")
        need(isinstance(self.validation_fraction, numbers.Real) and 0 < self.validation_fraction < 1, "validation_fraction", "a fraction in (0, 1)")
        need(is_int(self.n_iter_no_change) and self.n_iter_no_change >= 1, "n_iter_no_change", "an integer >= 1")
        need(isinstance(self.tol, numbers.Real) and self.tol >= 0, "tol", "a number >= 0")

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _fit_inputs(self, X: Any, y: Any) -> tuple[Any, Any]:
        """(X as C-contiguous float32 in its namespace, y as float32 in the same namespace)."""
        if _is_cupy(X):
            Xa = _as_matrix(X, "X")
            self.n_features_in_ = int(Xa.shape[1])
            if Xa.shape[0] < 2:
                raise InputError(f"X: found {Xa.shape[0]} sample(s), at least 2 are needed to fit")
            yv = self._encode_target(y, Xa.shape[0])
        else:
            if y is None:
                raise InputError(f"{type(self).__name__} requires y to be passed, but the target y is None")
            Xa, yh = _sk_validate(self, X, y, ensure_min_samples=2, y_numeric=self._kind == "regressor")
            yv = self._encode_target(yh, Xa.shape[0])
        from engine.backend import get_namespace

        return Xa, get_namespace(Xa).asarray(yv)

    def _features(self, X: Any) -> Any:
        """Features for prediction: float32, C-contiguous, as many columns as at fit."""
        check_is_fitted(self, "trees_")
        if _is_cupy(X):
            Xa = _as_matrix(X, "X")
            if Xa.shape[1] != self.n_features_in_:
                raise InputError(f"X has {Xa.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} features as input")
            return Xa
        return _sk_validate(self, X, reset=False)

    # ------------------------------------------------------------------------------- targets
    def _encode_target(self, y: Any, n: int) -> Any:
        """Target as float32, on the device for numeric CuPy targets, else on the host (the classifier
        also sets ``classes_``)."""
        from engine.backend import get_namespace, to_numpy

        if _is_cupy(y) and y.dtype.kind in "biuf":
            if y.ndim != 1 or y.shape[0] != n:
                raise InputError(f"y: expected {n} targets in one dimension, got shape {tuple(y.shape)}")
            if y.dtype.kind == "f" and not bool(get_namespace(y).isfinite(y).all()):
                raise InputError("y: targets must be finite (no NaN or infinity)")
            return y.astype(np.float32)
        yh = np.asarray(to_numpy(y))
        if yh.ndim != 1 or yh.shape[0] != n:
            raise InputError(f"y: expected {n} targets in one dimension, got shape {yh.shape}")
        try:
            yf = yh.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise InputError(f"y: expected numeric targets for regression: {e}") from e
        if not np.isfinite(yf).all():
            raise InputError("y: targets must be finite (no NaN or infinity)")
        return yf.astype(np.float32)

    def _base_score(self, y: Any) -> float:
        return float(y.astype(np.float64).mean())

    def _val_loss(self, raw: Any, y: Any) -> float:
        d = raw - y
        return float((d * d).mean())

    # ------------------------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any, eval_set: tuple[Any, Any] | None = None) -> "_TridentGBDT":
        """Fit the boosted trees.

        Parameters
        ----------
        X : (rows, features) array-like or CuPy array
            Numeric features; NaN marks a missing value.
        y : (rows,) array-like
            Targets (the classifier accepts any two labels).
        eval_set : (X_val, y_val), optional
            Validation data for early stopping (used instead of a ``validation_fraction`` split;
            early stopping is on whenever it is given).

        Returns
        -------
        self
        """
        from sklearn.utils import check_random_state

        from engine.backend import get_namespace
        from engine.train.gbdt_grow import GrowParams, TreeGrower
        from kernels.gbdt_binning import apply_bins, bin_edges
        from kernels.gbdt_loss import gradients
        from kernels.gbdt_predict import Forest, predict_binned

        self._check_params()
        X, yv = self._fit_inputs(X, y)
        xp = get_namespace(X)
        seed_rng = check_random_state(self.random_state)
        rng = np.random.default_rng(seed_rng.randint(np.iinfo(np.int32).max))

        X_val = y_val = None
        if eval_set is not None:
            if not (isinstance(eval_set, (tuple, list)) and len(eval_set) == 2):
                raise InputError("eval_set: expected a pair (X_val, y_val)")
            X_val = self._features_like(eval_set[0], X.shape[1], xp)
            y_val = xp.asarray(self._encode_eval_target(eval_set[1], X_val.shape[0]))
        elif self.early_stopping:
            train_idx, val_idx = self._validation_split(yv, rng)
            X_val, y_val = X[xp.asarray(val_idx)], yv[xp.asarray(val_idx)]
            X, yv = X[xp.asarray(train_idx)], yv[xp.asarray(train_idx)]

        n, n_features = X.shape
        edges, n_bins = bin_edges(X, self.max_bins, subsample=200_000, seed=int(rng.integers(2**31 - 1)))
        bins = apply_bins(X, edges, n_bins)
        bins_val = apply_bins(X_val, edges, n_bins) if X_val is not None else None

        base = self._base_score(yv)
        raw = xp.full(n, base, dtype=np.float64)
        raw_val = xp.full(X_val.shape[0], base, dtype=np.float64) if X_val is not None else None
        gh = xp.empty((n, 2), dtype=np.float32)
        params = GrowParams(
            self.max_depth, self.max_leaves, float(self.learning_rate), float(self.l2_regularization),
            float(self.min_child_weight), int(self.min_samples_leaf), float(self.min_split_gain),
        )
        grower = TreeGrower(bins, n_bins, params)
        n_cols = max(1, int(round(self.colsample * n_features)))
        all_features = np.arange(n_features, dtype=np.int64)

        trees: list[Any] = []
        scores: list[float] = []
        best_loss, best_iter, since_best = np.inf, -1, 0
        # Trees grown on the device update every row from their node table there; without a validation
        # set nothing needs them on the host before the end, so the fit never waits for the device.
        on_device = grower.device is not None
        defer = on_device and bins_val is None
        every_row = xp.arange(n, dtype=np.int32) if on_device else None  # copied, not rewritten, there
        for it in range(self.n_estimators):
            gradients(self._loss, raw, yv, gh)
            if self.subsample < 1.0:
                rows = np.flatnonzero(rng.random(n) < self.subsample).astype(np.int32)
                if rows.size < 2:
                    rows = np.sort(rng.choice(n, 2, replace=False)).astype(np.int32)
                rows = xp.asarray(rows)
            else:
                rows = every_row if on_device else xp.arange(n, dtype=np.int32)
            feats = all_features if n_cols == n_features else np.sort(rng.choice(n_features, n_cols, replace=False))
            tree = grower.grow(gh, rows, feats, defer=defer)
            if defer:
                grower.add_leaf_values(tree, raw)  # every row: the sampled-out ones too
                continue
            tree_arrays = self._tree_arrays(tree, edges, n_bins)
            if self.subsample < 1.0 and not on_device:
                predict_binned(bins, _single_forest(tree_arrays, np), raw)
            else:
                grower.add_leaf_values(tree, raw)
            trees.append(tree_arrays)
            if bins_val is not None:
                if on_device:  # from the node table still on the device
                    grower.device.add_tree(tree, raw_val, bins_val)
                else:
                    predict_binned(bins_val, _single_forest(tree_arrays, np), raw_val)  # one upload
                loss = self._val_loss(raw_val, y_val)
                scores.append(loss)
                if loss < best_loss - self.tol:
                    best_loss, best_iter, since_best = loss, it, 0
                else:
                    since_best += 1
                    if since_best >= self.n_iter_no_change:
                        break
        if defer:
            trees = [self._tree_arrays(t, edges, n_bins) for t in grower.collect()]
        if bins_val is not None:
            trees = trees[: best_iter + 1] if best_iter >= 0 else trees[:1]
            self.best_iteration_ = max(best_iter, 0)
        else:
            self.best_iteration_ = None
        self.validation_scores_ = np.asarray(scores)
        self.base_score_ = float(base)
        self.n_estimators_ = len(trees)
        self.bin_edges_ = edges
        self.n_bins_ = np.asarray(n_bins, np.int32)
        self.trees_ = _concat_trees(trees)
        self._forest = Forest(*(self.trees_[k] for k in Forest._fields))
        return self

    def _features_like(self, X: Any, n_features: int, xp: Any) -> Any:
        Xv = _as_matrix(X, "eval_set X_val")
        if Xv.shape[1] != n_features:
            raise InputError(f"eval_set: X_val has {Xv.shape[1]} features, X has {n_features}")
        return xp.asarray(Xv)

    def _encode_eval_target(self, y: Any, n: int) -> np.ndarray:
        try:
            return self._encode_target(y, n)
        except InputError as e:
            raise InputError(f"eval_set y_val: {e}") from e

    def _validation_split(self, y: Any, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        n = int(y.shape[0])
        perm = rng.permutation(n)
        n_val = max(1, int(round(self.validation_fraction * n)))
        if n - n_val < 2:
            raise InputError(f"validation_fraction={self.validation_fraction} leaves fewer than 2 training rows out of {n}")
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])

    @staticmethod
    def _tree_arrays(tree: Any, edges: np.ndarray, n_bins: np.ndarray) -> dict[str, np.ndarray]:
        inner = tree.feature >= 0
        threshold = np.zeros(tree.n_nodes, np.float32)
        f = tree.feature[inner]
        b = tree.split_bin[inner]
        last = b >= n_bins[f] - 1
        thr = np.where(last, np.float32(np.inf), edges[f, np.minimum(b, edges.shape[1] - 1)])
        threshold[inner] = thr
        return {
            "feature": tree.feature, "threshold": threshold, "split_bin": tree.split_bin, "missing_left": tree.missing_left,
            "left": np.where(inner, tree.left, 0).astype(np.int32), "right": np.where(inner, tree.right, 0).astype(np.int32),
            "value": tree.value, "gain": tree.gain, "count": tree.count, "hessian": tree.hessian,
        }

    # -------------------------------------------------------------------------------- predict
    def _raw(self, X: Any) -> Any:
        from engine.backend import get_namespace
        from kernels.gbdt_predict import predict_raw

        X = self._features(X)
        xp = get_namespace(X)
        out = xp.full(X.shape[0], self.base_score_, dtype=np.float64)
        forest = self._forest if xp is np else self._forest.to(xp)
        return predict_raw(X, forest, out)

    # ---------------------------------------------------------------------------- importances
    def feature_importance(self, kind: str = "gain", normalize: bool = False) -> np.ndarray:
        """Per-feature importance: ``"gain"`` (total split gain) or ``"split"`` (number of splits).

        ``normalize=True`` scales the values to sum to 1 (all zeros stay zeros).
        """
        check_is_fitted(self, "trees_")
        if kind not in ("gain", "split"):
            raise ValueError(f"kind: expected 'gain' or 'split', got {kind!r}")
        t = self.trees_
        inner = t["feature"] >= 0
        weights = t["gain"][inner] if kind == "gain" else None
        imp = np.bincount(t["feature"][inner], weights=weights, minlength=self.n_features_in_).astype(np.float64)
        if normalize:
            s = imp.sum()
            imp = imp / s if s > 0 else imp
        return imp

    @property
    def feature_importances_(self) -> np.ndarray:
        """Gain importance normalised to sum to 1."""
        return self.feature_importance("gain", normalize=True)

    # -------------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """The fitted model as plain data: JSON-able values and NumPy arrays (``trees``, ``bin_edges``,
        ``n_bins``). :meth:`from_dict` rebuilds it."""
        check_is_fitted(self, "trees_")
        params = self.get_params()
        if not (params["random_state"] is None or isinstance(params["random_state"], numbers.Integral)):
            params["random_state"] = None
        params = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self._kind,
            "loss": self._loss,
            "params": params,
            "n_features": int(self.n_features_in_),
            "feature_names": None if not hasattr(self, "feature_names_in_") else [str(c) for c in self.feature_names_in_],
            "classes": None if not hasattr(self, "classes_") else np.asarray(self.classes_).tolist(),
            "base_score": float(self.base_score_),
            "n_estimators": int(self.n_estimators_),
            "best_iteration": self.best_iteration_,
            "validation_scores": [float(v) for v in self.validation_scores_],
            "bin_edges": np.asarray(self.bin_edges_),
            "n_bins": np.asarray(self.n_bins_),
            "trees": {k: np.asarray(self.trees_[k]) for k in _TREE_KEYS},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "_TridentGBDT":
        """A fitted estimator from :meth:`to_dict`'s output.

        Raises
        ------
        DataError
            When ``data`` is not a Trident GBDT model of this kind, or a key is missing or malformed.
        """
        from kernels.gbdt_predict import Forest

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(f"from_dict: expected a dict with format={FORMAT!r}")
        if data.get("format_version") != FORMAT_VERSION:
            raise DataError(f"from_dict: format_version {data.get('format_version')!r} is not supported (expected {FORMAT_VERSION})")
        if data.get("kind") != cls._kind:
            raise DataError(f"from_dict: the model is a {data.get('kind')!r}, {cls.__name__} loads a {cls._kind!r}")
        try:
            est = cls(**data["params"])
            trees = data["trees"]
            est.trees_ = {k: np.ascontiguousarray(np.asarray(trees[k]), dtype=_TREE_DTYPES[k]) for k in _TREE_KEYS}
            est.n_features_in_ = int(data["n_features"])
            est.base_score_ = float(data["base_score"])
            est.n_estimators_ = int(data["n_estimators"])
            est.best_iteration_ = data["best_iteration"]
            est.validation_scores_ = np.asarray(data["validation_scores"], dtype=np.float64)
            est.bin_edges_ = np.asarray(data["bin_edges"], dtype=np.float32)
            est.n_bins_ = np.asarray(data["n_bins"], dtype=np.int32)
            if data.get("feature_names") is not None:
                est.feature_names_in_ = np.asarray(data["feature_names"], dtype=object)
            if data.get("classes") is not None:
                est.classes_ = np.asarray(data["classes"])
        except KeyError as e:
            raise DataError(f"from_dict: missing key {e.args[0]!r}") from e
        except (TypeError, ValueError) as e:
            raise DataError(f"from_dict: malformed model data: {e}") from e
        _validate_trees(est.trees_, est.n_features_in_)
        est._forest = Forest(*(est.trees_[k] for k in Forest._fields))
        return est


def _as_matrix(X: Any, name: str) -> Any:
    """``X`` as a C-contiguous float32 matrix of its own namespace (CuPy stays CuPy)."""
    if _is_cupy(X):
        import cupy

        Xa = cupy.ascontiguousarray(X.astype(np.float32, copy=False))
    else:
        try:
            Xa = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
        except (TypeError, ValueError) as e:
            raise InputError(f"{name}: expected numeric features (encode categorical columns first): {e}") from e
    if Xa.ndim != 2:
        raise InputError(f"{name}: expected a 2-D (rows, features) matrix, got {Xa.ndim} dimension(s)")
    return Xa


def _validate_trees(t: dict[str, np.ndarray], n_features: int) -> None:
    n = t["feature"].shape[0]
    for k in _TREE_KEYS:
        if k != "offsets" and t[k].shape != (n,):
            raise DataError(f"from_dict: trees[{k!r}] has shape {t[k].shape}, expected ({n},)")
    off = t["offsets"]
    if off.ndim != 1 or (off.size and (off[0] != 0 or np.any(np.diff(off) <= 0) or off[-1] >= n)):
        raise DataError("from_dict: trees['offsets'] must start at 0 and increase within the node count")
    ends = np.append(off[1:], n)
    inner = t["feature"] >= 0
    if np.any(t["feature"] >= n_features):
        raise DataError(f"from_dict: trees['feature'] refers to a feature >= n_features ({n_features})")
    size = np.repeat(ends - off, ends - off)
    if np.any(inner & ((t["left"] <= 0) | (t["right"] <= 0) | (t["left"] >= size) | (t["right"] >= size))):
        raise DataError("from_dict: trees['left'] / trees['right'] point outside their tree")


def _single_forest(tree: dict[str, np.ndarray], xp: Any) -> Any:
    from kernels.gbdt_predict import Forest

    f = Forest(np.zeros(1, np.int64), *(tree[k] for k in Forest._fields[1:]))
    return f if xp is np else f.to(xp)


def _concat_trees(trees: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    sizes = np.array([t["feature"].shape[0] for t in trees], np.int64)
    out = {"offsets": np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)}
    for k in _TREE_KEYS[1:]:
        out[k] = np.ascontiguousarray(np.concatenate([t[k] for t in trees]), dtype=_TREE_DTYPES[k])
    return out


class TridentGBDTRegressor(RegressorMixin, _TridentGBDT):
    """Histogram gradient-boosted trees for regression (squared error).

    Parameters
    ----------
    n_estimators : int, default=100
        Boosting iterations (trees).
    learning_rate : float, default=0.1
        Shrinkage of every leaf value.
    max_depth : int or None, default=6
        Depth limit. With ``max_leaves=None`` trees grow depth-wise to this depth.
    max_leaves : int or None, default=None
        When set, trees grow best-first to this many leaves (and ``max_depth`` still applies).
    l2_regularization : float, default=0.0
        L2 penalty on leaf values (``lambda``).
    min_child_weight : float, default=1e-3
        Minimum hessian sum of a child.
    min_samples_leaf : int, default=20
        Minimum rows of a child.
    min_split_gain : float, default=0.0
        A split must gain more than this.
    subsample : float, default=1.0
        Fraction of rows drawn (without replacement, independently per tree) for each tree.
    colsample : float, default=1.0
        Fraction of features drawn for each tree.
    max_bins : int, default=255
        Value bins per feature (2..255; NaN has its own bin).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows and stop when the validation loss has not
        improved by ``tol`` for ``n_iter_no_change`` trees; the trees after the best iteration are
        dropped. Passing ``eval_set`` to :meth:`fit` turns it on with that data instead.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=10
    tol : float, default=1e-7
    random_state : int, RandomState or None, default=None
        Seeds the bin subsample, row and feature sampling and the validation split; a fixed seed
        gives the same model on the same data and machine.

    Attributes
    ----------
    n_features_in_, feature_names_in_ (DataFrame input), base_score_, n_estimators_ (trees kept),
    best_iteration_ (None without early stopping), validation_scores_, bin_edges_, n_bins_,
    trees_ (flat node arrays), feature_importances_.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3)); y = 2 * X[:, 0] + rng.normal(scale=0.1, size=500)
    >>> m = TridentGBDTRegressor(n_estimators=50, max_depth=3, random_state=0).fit(X, y)
    >>> float(np.corrcoef(m.predict(X), y)[0, 1]) > 0.95
    True
    """

    _loss = "squared_error"
    _kind = "regressor"

    def predict(self, X: Any) -> Any:
        """Predicted values (float64, in the namespace of ``X``)."""
        return self._raw(X)


class TridentGBDTClassifier(ClassifierMixin, _TridentGBDT):
    """Histogram gradient-boosted trees for binary classification (log loss).

    Same parameters as :class:`TridentGBDTRegressor`. ``y`` may hold any two labels; ``classes_[1]``
    is the positive class. Early stopping holds out a stratified ``validation_fraction``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3)); y = np.where(X[:, 0] + X[:, 1] > 0, "bad", "good")
    >>> m = TridentGBDTClassifier(n_estimators=30, max_depth=3, random_state=0).fit(X, y)
    >>> m.classes_.tolist(), float((m.predict(X) == y).mean()) > 0.95
    (['bad', 'good'], True)
    """

    _loss = "log_loss"
    _kind = "classifier"

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _encode_target(self, y: Any, n: int) -> Any:
        from sklearn.utils.multiclass import check_classification_targets

        from engine.backend import to_numpy

        if _is_cupy(y) and y.dtype.kind in "biuf":
            return self._encode_device_target(y, n)
        yh = np.asarray(to_numpy(y))
        if yh.ndim != 1 or yh.shape[0] != n:
            raise InputError(f"y: expected {n} labels in one dimension, got shape {yh.shape}")
        if yh.dtype.kind == "f" and not np.isfinite(yh).all():
            raise InputError("y: class labels must not be missing or infinite")
        try:
            check_classification_targets(yh)
        except ValueError as e:
            raise InputError(f"y: {e}") from e
        classes, enc = np.unique(yh, return_inverse=True)
        if classes.size != 2:
            raise InputError(f"y: Only binary classification is supported. {type(self).__name__} needs exactly 2 "
                             f"classes, got {classes.size}: {classes[:10].tolist()}")
        self.classes_ = classes
        return enc.astype(np.float32)

    def _encode_device_target(self, y: Any, n: int) -> Any:
        """Numeric labels on the device: the classes are found there (a sort) and only they come back;
        the 0/1 target stays on the device. Same checks and errors as the host path."""
        from engine.backend import get_namespace, to_numpy

        xp = get_namespace(y)
        if y.ndim != 1 or y.shape[0] != n:
            raise InputError(f"y: expected {n} labels in one dimension, got shape {tuple(y.shape)}")
        classes = np.asarray(to_numpy(xp.unique(y)))
        if classes.dtype.kind == "f":
            if not np.isfinite(classes).all():
                raise InputError("y: class labels must not be missing or infinite")
            if classes.size > 0 and not np.array_equal(classes, np.floor(classes)):  # as scikit-learn's check
                raise InputError("y: Unknown label type: continuous. Maybe you are trying to fit a classifier, which "
                                 "expects discrete classes on a regression target with continuous values.")
        if classes.size != 2:
            raise InputError(f"y: Only binary classification is supported. {type(self).__name__} needs exactly 2 "
                             f"classes, got {classes.size}: {classes[:10].tolist()}")
        self.classes_ = classes
        return (y == y.dtype.type(classes[1])).astype(np.float32)

    def _encode_eval_target(self, y: Any, n: int) -> np.ndarray:
        from engine.backend import to_numpy

        yh = np.asarray(to_numpy(y)).reshape(-1)
        if yh.shape[0] != n:
            raise InputError(f"eval_set: X_val has {n} rows but y_val has {yh.shape[0]}")
        unknown = ~np.isin(yh, self.classes_)
        if unknown.any():
            raise InputError(f"eval_set: y_val holds labels not seen in y: {np.unique(yh[unknown])[:10].tolist()}")
        return (yh == self.classes_[1]).astype(np.float32)

    def _base_score(self, y: Any) -> float:
        p = float(y.astype(np.float64).mean())
        p = min(max(p, 1e-12), 1 - 1e-12)
        return float(np.log(p / (1 - p)))

    def _val_loss(self, raw: Any, y: Any) -> float:
        from engine.backend import get_namespace

        xp = get_namespace(raw)
        return float((xp.logaddexp(0.0, raw) - y * raw).mean())

    def _validation_split(self, y: Any, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        from engine.backend import to_numpy

        yh = np.asarray(to_numpy(y))
        train, val = [], []
        for c in (0.0, 1.0):
            idx = np.flatnonzero(yh == c)
            idx = idx[rng.permutation(idx.size)]
            k = int(round(self.validation_fraction * idx.size))
            val.append(idx[:k])
            train.append(idx[k:])
        train, val = np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
        if val.size == 0 or train.size < 2:
            raise InputError(f"validation_fraction={self.validation_fraction} leaves no validation or too few training rows")
        return train, val

    def decision_function(self, X: Any) -> Any:
        """Raw scores (log-odds of ``classes_[1]``), float64, in the namespace of ``X``."""
        return self._raw(X)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, shape (rows, 2), columns in ``classes_`` order."""
        from engine.backend import get_namespace

        raw = self._raw(X)
        xp = get_namespace(raw)
        p = 1.0 / (1.0 + xp.exp(-raw))
        return xp.stack([1.0 - p, p], axis=1)

    def predict(self, X: Any) -> Any:
        """Predicted labels (``classes_[1]`` where its probability exceeds 0.5)."""
        from engine.backend import get_namespace, to_numpy

        raw = self._raw(X)
        xp = get_namespace(raw)
        pos = raw > 0
        if xp is np:
            return self.classes_[pos.astype(np.int64)]
        if self.classes_.dtype.kind in "biuf":
            return xp.asarray(self.classes_)[pos.astype(np.int64)]
        return self.classes_[to_numpy(pos).astype(np.int64)]
