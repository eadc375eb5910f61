"""Config schema for this stage (registered by engine.config.schema); values in conf/features/."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Optional

from engine.errors import ConfigError


class ImputeStrategy(Enum):
    median = "median"
    mean = "mean"
    most_frequent = "most_frequent"
    constant = "constant"


class CategoricalImpute(Enum):
    most_frequent = "most_frequent"
    constant = "constant"


class ClipMethod(Enum):
    none = "none"
    quantile = "quantile"
    iqr = "iqr"


class Scaler(Enum):
    none = "none"
    standard = "standard"
    robust = "robust"


class Encoder(Enum):
    onehot = "onehot"
    hashing = "hashing"
    frequency = "frequency"
    target = "target"


class Reduce(Enum):
    none = "none"
    pca = "pca"
    svd = "svd"


class DeriveOp(Enum):
    ratio = "ratio"
    difference = "difference"


@dataclass
class DeriveSpec:
    """A feature computed from two numeric columns: ``a / b`` (ratio) or ``a - b`` (difference)."""

    name: str = "???"
    op: DeriveOp = DeriveOp.ratio
    a: str = "???"
    b: str = "???"


@dataclass
class FeaturesConfig:
    """Feature engineering (conf/features). Every key is documented in conf/features/default.yaml."""

    enabled: bool = True
    # numeric columns, derived features and date parts
    impute: ImputeStrategy = ImputeStrategy.median
    fill_value: float = 0.0
    missing_indicators: bool = True
    clip: ClipMethod = ClipMethod.quantile
    clip_quantiles: list[float] = field(default_factory=lambda: [0.005, 0.995])
    clip_iqr_factor: float = 1.5
    scaler: Scaler = Scaler.standard
    # categorical columns
    impute_categorical: CategoricalImpute = CategoricalImpute.constant
    categorical_fill_value: str = "__missing__"
    onehot_max_levels: int = 20
    rare_min_share: float = 0.01
    high_cardinality: int = 100
    medium_cardinality_encoder: Encoder = Encoder.target
    high_cardinality_encoder: Encoder = Encoder.hashing
    encoders: dict[str, Encoder] = field(default_factory=dict)
    hashing_buckets: int = 32
    target_folds: int = 5
    target_smoothing: float = 20.0
    # dates
    dates: bool = True
    date_parts: list[str] = field(default_factory=lambda: ["year", "month", "dayofweek", "dayofyear", "hour",
                                                           "epoch_days"])
    # derived features
    derive: list[DeriveSpec] = field(default_factory=list)
    # selection and reduction
    drop_constant: bool = True
    drop_duplicates: bool = True
    correlation_threshold: Optional[float] = 0.98
    reduce: Reduce = Reduce.none
    n_components: int = 10
    # columns and fitting
    exclude: list[str] = field(default_factory=list)
    id_min_rows: int = 100
    sample_rows: int = 200000
    fit_partitions: int = 0
    seed: int = 0


_ENUMS: dict[str, type[Enum]] = {
    "impute": ImputeStrategy,
    "impute_categorical": CategoricalImpute,
    "clip": ClipMethod,
    "scaler": Scaler,
    "medium_cardinality_encoder": Encoder,
    "high_cardinality_encoder": Encoder,
    "reduce": Reduce,
}
_DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "hour", "epoch_days")


def _enum(key: str, cls: type[Enum], v: Any) -> Enum:
    if isinstance(v, cls):
        return v
    v = getattr(v, "value", v)
    try:
        return cls(v)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise ConfigError(f"features.{key}: expected one of {allowed}, got {v!r}") from None


def _plain(cfg: Any) -> dict[str, Any]:
    if cfg is None:
        return {}
    if isinstance(cfg, FeaturesConfig):
        return {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    if type(cfg).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return dict(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    if isinstance(cfg, dict):
        return dict(cfg)
    raise ConfigError(f"features: expected a FeaturesConfig, a mapping or None, got {type(cfg).__name__}")


def resolve_config(cfg: Any = None, **overrides: Any) -> FeaturesConfig:
    """A validated :class:`FeaturesConfig` from a dataclass, DictConfig, dict and/or keyword overrides.

    Raises
    ------
    ConfigError
        Naming the key (``features.<key>``) and what is allowed.
    """
    values = _plain(cfg)
    values.update(overrides)
    known = {f.name for f in fields(FeaturesConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"features.{unknown[0]}: unknown key; known keys: {', '.join(sorted(known))}")
    out = FeaturesConfig(**values)
    for key, cls in _ENUMS.items():
        setattr(out, key, _enum(key, cls, getattr(out, key)))
    out.encoders = {str(c): _enum(f"encoders.{c}", Encoder, e) for c, e in dict(out.encoders or {}).items()}
    derive = []
    for i, d in enumerate(out.derive or []):
        if isinstance(d, DeriveSpec):
            d = {"name": d.name, "op": d.op, "a": d.a, "b": d.b}
        elif type(d).__module__.startswith("omegaconf") or isinstance(d, dict):
            d = dict(_plain(d) if not isinstance(d, dict) else d)
        else:
            raise ConfigError(f"features.derive[{i}]: expected a mapping with name, op, a, b; got {d!r}")
        extra = set(d) - {"name", "op", "a", "b"}
        if extra:
            raise ConfigError(f"features.derive[{i}].{sorted(extra)[0]}: unknown key; expected name, op, a, b")
        for k in ("name", "a", "b"):
            if not isinstance(d.get(k), str) or not d.get(k) or d.get(k) == "???":
                raise ConfigError(f"features.derive[{i}].{k}: expected a column name, got {d.get(k)!r}")
        derive.append(DeriveSpec(d["name"], _enum(f"derive[{i}].op", DeriveOp, d.get("op", "ratio")), d["a"], d["b"]))
    names = [d.name for d in derive]
    if len(set(names)) != len(names):
        raise ConfigError(f"features.derive: duplicate feature names {sorted({n for n in names if names.count(n) > 1})}")
    out.derive = derive
    q = [float(x) for x in (out.clip_quantiles or [])]
    if len(q) != 2 or not (0.0 <= q[0] < q[1] <= 1.0):
        raise ConfigError(f"features.clip_quantiles: expected [low, high] with 0 <= low < high <= 1, got {out.clip_quantiles!r}")
    out.clip_quantiles = q
    bad_parts = [p for p in out.date_parts if p not in _DATE_PARTS]
    if bad_parts:
        raise ConfigError(f"features.date_parts: unknown part {bad_parts[0]!r}; allowed: {', '.join(_DATE_PARTS)}")
    checks = [
        ("onehot_max_levels", out.onehot_max_levels >= 1, "an integer >= 1"),
        ("rare_min_share", 0.0 <= out.rare_min_share < 1.0, "a share in [0, 1)"),
        ("high_cardinality", out.high_cardinality >= 1, "an integer >= 1"),
        ("hashing_buckets", 1 <= out.hashing_buckets <= 1 << 20, "an integer in [1, 1048576]"),
        ("target_folds", out.target_folds >= 2, "an integer >= 2"),
        ("target_smoothing", out.target_smoothing >= 0.0, "a number >= 0"),
        ("clip_iqr_factor", out.clip_iqr_factor >= 0.0, "a number >= 0"),
        ("n_components", out.n_components >= 1, "an integer >= 1"),
        ("sample_rows", out.sample_rows >= 0, "an integer >= 0 (0 = all rows)"),
        ("id_min_rows", out.id_min_rows >= 1, "an integer >= 1"),
        ("fit_partitions", out.fit_partitions >= 0, "an integer >= 0 (0 = fit in memory)"),
    ]
    for key, ok, what in checks:
        if not ok:
            raise ConfigError(f"features.{key}: expected {what}, got {getattr(out, key)!r}")
    t = out.correlation_threshold
    if t is not None and not (0.0 < float(t) <= 1.0):
        raise ConfigError(f"features.correlation_threshold: expected a number in (0, 1] or null, got {t!r}")
    out.exclude = [str(c) for c in (out.exclude or [])]
    return out


def config_record(cfg: FeaturesConfig) -> dict[str, Any]:
    """The config as plain JSON data (enums as their values)."""
    rec: dict[str, Any] = {}
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, Enum):
            v = v.value
        elif f.name == "encoders":
            v = {c: e.value for c, e in v.items()}
        elif f.name == "derive":
            v = [{"name": d.name, "op": d.op.value, "a": d.a, "b": d.b} for d in v]
        elif isinstance(v, list):
            v = list(v)
        rec[f.name] = v
    return rec
