"""Triton ``config.pbtxt`` for a packaged pipeline, built as a protobuf message (never by hand).

One served pipeline takes the RAW input columns (numeric as FP64/FP32, categorical and datetime as
BYTES strings, one tensor per column of shape ``[batch, 1]``) and returns ``score`` (FP64) and
``label`` (BYTES for labelled binary targets, INT64 for unlabelled ones, FP64 for regression).
Two layouts: ``single`` (one python model) and ``ensemble`` (``<name>_features`` python model, then
``<name>_estimator`` python model, wired by a Triton ensemble).

The column -> tensor mapping and the input signature travel in the config's ``parameters`` so that a
client needs nothing but the server to build requests.
"""
from __future__ import annotations

import json
import re
from typing import Any

LAYOUTS = ("single", "ensemble")
#: ``auto`` resolves to this layout: one python model measured faster than the ensemble
#: (``python -m bench serve --layout single|ensemble``; each ensemble hop adds a stub round trip).
DEFAULT_LAYOUT = "single"
NUMERIC_TYPES = ("TYPE_FP64", "TYPE_FP32")
FEATURES_TENSOR = "features"
OUTPUTS = ("score", "label")
PARAM_COLUMNS = "trident.columns"
PARAM_SIGNATURE = "trident.signature"
PARAM_LAYOUT = "trident.layout"
PARAM_ROLE = "trident.role"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def pb() -> Any:
    """The ``model_config_pb2`` module shipped with tritonclient."""
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2


def resolve_layout(layout: str) -> str:
    layout = str(layout or "auto")
    if layout == "auto":
        return DEFAULT_LAYOUT
    if layout not in LAYOUTS:
        raise ValueError(f"deploy.export.layout={layout!r}: expected auto, single or ensemble")
    return layout


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.endswith(".") or "__" in name:
        raise ValueError(f"model name {name!r}: use letters, digits, '_', '-', '.' (no '__'; it starts "
                         f"with a letter or digit), it names a folder of the model repository")
    return name


def tensor_names(columns: list[str]) -> dict[str, str]:
    """Column -> Triton tensor name: the column name when it is a plain identifier, else a sanitised,
    unique one (``c<i>_<name>``)."""
    out: dict[str, str] = {}
    used: set[str] = set(OUTPUTS) | {FEATURES_TENSOR}
    for i, col in enumerate(columns):
        name = col if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", col) and col not in used else \
            f"c{i}_" + re.sub(r"[^A-Za-z0-9_]", "_", col)
        while name in used:
            name = f"c{i}_{name}"
        used.add(name)
        out[col] = name
    return out


def label_type(meta: dict[str, Any]) -> str:
    if meta.get("task") != "binary":
        return "TYPE_FP64"
    return "TYPE_STRING" if meta.get("labels") else "TYPE_INT64"


def signature(meta: dict[str, Any], numeric_type: str) -> dict[str, Any]:
    """What two versions served side by side (one config) must share."""
    return {"input_columns": [{"name": c["name"], "kind": c["kind"]} for c in meta["input_columns"]],
            "numeric_type": numeric_type, "label_type": label_type(meta), "task": meta.get("task")}


def _column_specs(meta: dict[str, Any]) -> list[dict[str, str]]:
    names = tensor_names([c["name"] for c in meta["input_columns"]])
    return [{"name": c["name"], "kind": c["kind"], "tensor": names[c["name"]]} for c in meta["input_columns"]]


def _add_io(cfg: Any, meta: dict[str, Any], numeric_type: str, inputs: bool = True, outputs: bool = True) -> None:
    m = pb()
    if inputs:
        for spec in _column_specs(meta):
            t = cfg.input.add()
            t.name = spec["tensor"]
            t.data_type = m.DataType.Value(numeric_type if spec["kind"] == "numeric" else "TYPE_STRING")
            t.dims.extend([1])
    if outputs:
        for name, dtype in (("score", "TYPE_FP64"), ("label", label_type(meta))):
            t = cfg.output.add()
            t.name = name
            t.data_type = m.DataType.Value(dtype)
            t.dims.extend([1])


def _python_model(name: str, versions: list[int], meta: dict[str, Any], export_cfg: Any, env_path: str,
                  role: str, layout: str) -> Any:
    m = pb()
    numeric_type = str(export_cfg.numeric_type)
    if numeric_type not in NUMERIC_TYPES:
        raise ValueError(f"deploy.export.numeric_type={numeric_type!r}: expected one of {NUMERIC_TYPES}")
    cfg = m.ModelConfig(name=name, backend="python", max_batch_size=int(export_cfg.max_batch_size))
    cfg.version_policy.specific.versions.extend(sorted(int(v) for v in versions))
    g = cfg.instance_group.add()
    g.kind = m.ModelInstanceGroup.KIND_CPU
    g.count = int(export_cfg.instances)
    if export_cfg.dynamic_batching:
        cfg.dynamic_batching.max_queue_delay_microseconds = int(export_cfg.max_queue_delay_us)
    if env_path:
        cfg.parameters["EXECUTION_ENV_PATH"].string_value = str(env_path)
    cfg.parameters[PARAM_ROLE].string_value = role
    cfg.parameters[PARAM_LAYOUT].string_value = layout
    cfg.parameters[PARAM_COLUMNS].string_value = json.dumps(_column_specs(meta))
    cfg.parameters[PARAM_SIGNATURE].string_value = json.dumps(signature(meta, numeric_type), sort_keys=True)
    cfg.parameters["intra_op_threads"].string_value = str(int(export_cfg.intra_op_threads))
    n_features = len(meta.get("feature_names") or [])
    if role == "pipeline":
        _add_io(cfg, meta, numeric_type)
    elif role == "features":
        _add_io(cfg, meta, numeric_type, outputs=False)
        t = cfg.output.add()
        t.name = FEATURES_TENSOR
        t.data_type = m.TYPE_FP32
        t.dims.extend([n_features if n_features else -1])
    elif role == "estimator":
        t = cfg.input.add()
        t.name = FEATURES_TENSOR
        t.data_type = m.TYPE_FP32
        t.dims.extend([n_features if n_features else -1])
        _add_io(cfg, meta, numeric_type, inputs=False)
    else:
        raise ValueError(f"unknown model role {role!r}")
    return cfg


def step_names(name: str) -> tuple[str, str]:
    """The two python models behind the ensemble ``name``."""
    return f"{name}_features", f"{name}_estimator"


def build_configs(name: str, meta: dict[str, Any], export_cfg: Any, env_path: str, versions: list[int],
                  layout: str) -> dict[str, Any]:
    """``{model name: ModelConfig}`` for every model of the served pipeline ``name``.

    Parameters
    ----------
    name : str
        The model name clients call.
    meta : dict
        The packaged model's model.json.
    export_cfg : ExportConfig
        Batching, instances, numeric type.
    env_path : str
        Absolute path of the serving venv (``EXECUTION_ENV_PATH``); empty for the server's own Python.
    versions : list of int
        The versions loaded (``version_policy: specific``).
    layout : str
        ``single`` or ``ensemble``.
    """
    layout = resolve_layout(layout)
    if layout == "single":
        return {name: _python_model(name, versions, meta, export_cfg, env_path, "pipeline", layout)}
    m = pb()
    feats, est = step_names(name)
    out = {feats: _python_model(feats, versions, meta, export_cfg, env_path, "features", layout),
           est: _python_model(est, versions, meta, export_cfg, env_path, "estimator", layout)}
    ens = m.ModelConfig(name=name, platform="ensemble", max_batch_size=int(export_cfg.max_batch_size))
    ens.version_policy.specific.versions.extend(sorted(int(v) for v in versions))
    _add_io(ens, meta, str(export_cfg.numeric_type))
    ens.parameters[PARAM_ROLE].string_value = "ensemble"
    ens.parameters[PARAM_LAYOUT].string_value = layout
    ens.parameters[PARAM_COLUMNS].string_value = json.dumps(_column_specs(meta))
    ens.parameters[PARAM_SIGNATURE].string_value = json.dumps(signature(meta, str(export_cfg.numeric_type)),
                                                             sort_keys=True)
    version = max(int(v) for v in versions)
    s1 = ens.ensemble_scheduling.step.add()
    s1.model_name, s1.model_version = feats, version
    for spec in _column_specs(meta):
        s1.input_map[spec["tensor"]] = spec["tensor"]
    s1.output_map[FEATURES_TENSOR] = FEATURES_TENSOR
    s2 = ens.ensemble_scheduling.step.add()
    s2.model_name, s2.model_version = est, version
    s2.input_map[FEATURES_TENSOR] = FEATURES_TENSOR
    for o in OUTPUTS:
        s2.output_map[o] = o
    out[name] = ens
    return out


def set_versions(cfg: Any, versions: list[int]) -> Any:
    """A copy of ``cfg`` serving exactly ``versions`` (ensemble steps follow the highest one)."""
    new = pb().ModelConfig()
    new.CopyFrom(cfg)
    new.version_policy.ClearField("specific")
    new.version_policy.specific.versions.extend(sorted(int(v) for v in versions))
    for step in new.ensemble_scheduling.step:
        step.model_version = max(int(v) for v in versions)
    return new


def served_versions(cfg: Any) -> list[int]:
    return sorted(int(v) for v in cfg.version_policy.specific.versions)


def renamed(cfg: Any, name: str, step_map: dict[str, str] | None = None) -> Any:
    """A copy of ``cfg`` named ``name`` (ensemble steps renamed through ``step_map``)."""
    new = pb().ModelConfig()
    new.CopyFrom(cfg)
    new.name = name
    for step in new.ensemble_scheduling.step:
        step.model_name = (step_map or {}).get(step.model_name, step.model_name)
    return new


def to_pbtxt(cfg: Any) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(cfg)


def from_pbtxt(text: str) -> Any:
    from google.protobuf import text_format

    return text_format.Parse(text, pb().ModelConfig())


def to_json(cfg: Any) -> str:
    """The config as the JSON ``load_model(config=...)`` expects."""
    from google.protobuf import json_format

    return json_format.MessageToJson(cfg, preserving_proto_field_name=True, indent=None)


def parameter(cfg: Any, key: str, default: str | None = None) -> str | None:
    return cfg.parameters[key].string_value if key in cfg.parameters else default


def column_specs(cfg: Any) -> list[dict[str, str]]:
    """``[{"name", "kind", "tensor"}]`` recorded in a pipeline config."""
    raw = parameter(cfg, PARAM_COLUMNS)
    return json.loads(raw) if raw else []
