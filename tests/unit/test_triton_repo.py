"""The Triton model repository pieces that need no server: configs, the request codec, column conversion."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.config import compose
from engine.export import triton_config as tc
from engine.serve.columns import from_json_rows, to_columns, to_json_rows

REPO = Path(__file__).resolve().parents[2]
META = {"format_version": 1, "task": "binary", "name": "credit",
        "input_columns": [{"name": "income", "kind": "numeric"}, {"name": "home", "kind": "categorical"},
                          {"name": "applied on", "kind": "datetime"}],
        "feature_names": ["a", "b", "c", "d"], "labels": {"0": "good", "1": "bad"}}


@pytest.fixture(scope="module")
def export_cfg():
    return compose([]).deploy.export


@pytest.fixture(scope="module")
def triton_io():
    spec = importlib.util.spec_from_file_location("triton_io", REPO / "triton_models" / "templates" / "triton_io.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_single_config_takes_raw_columns_and_returns_score_and_label(export_cfg):
    cfg = tc.build_configs("credit", META, export_cfg, "/abs/venv", [3], "single")["credit"]
    m = tc.pb()
    assert cfg.backend == "python" and cfg.max_batch_size == export_cfg.max_batch_size
    types = {i.name: m.DataType.Name(i.data_type) for i in cfg.input}
    assert types == {"income": "TYPE_FP64", "home": "TYPE_STRING", "c2_applied_on": "TYPE_STRING"}
    assert {o.name: m.DataType.Name(o.data_type) for o in cfg.output} == {"score": "TYPE_FP64", "label": "TYPE_STRING"}
    assert all(list(i.dims) == [1] for i in cfg.input)
    assert cfg.instance_group[0].kind == m.ModelInstanceGroup.KIND_CPU
    assert cfg.dynamic_batching.max_queue_delay_microseconds == export_cfg.max_queue_delay_us
    assert cfg.parameters["EXECUTION_ENV_PATH"].string_value == "/abs/venv"
    assert tc.served_versions(cfg) == [3]


def test_config_round_trips_through_pbtxt_and_json(export_cfg):
    from google.protobuf import json_format

    cfg = tc.build_configs("credit", META, export_cfg, "/v", [1, 2], "single")["credit"]
    assert tc.from_pbtxt(tc.to_pbtxt(cfg)) == cfg
    assert json_format.Parse(tc.to_json(cfg), tc.pb().ModelConfig()) == cfg


def test_column_specs_map_columns_to_tensors(export_cfg):
    cfg = tc.build_configs("credit", META, export_cfg, "", [1], "single")["credit"]
    specs = tc.column_specs(cfg)
    assert [(s["name"], s["tensor"]) for s in specs] == [("income", "income"), ("home", "home"),
                                                         ("applied on", "c2_applied_on")]


def test_tensor_names_are_unique_identifiers_not_clashing_with_outputs():
    names = tc.tensor_names(["score", "a b", "a_b", "x"])
    assert len(set(names.values())) == 4
    assert names["score"] != "score" and names["x"] == "x"
    assert all(n.replace("_", "a").isalnum() for n in names.values())


def test_label_type_follows_the_task():
    assert tc.label_type(META) == "TYPE_STRING"
    assert tc.label_type({**META, "labels": None}) == "TYPE_INT64"
    assert tc.label_type({**META, "task": "regression"}) == "TYPE_FP64"


def test_ensemble_wires_features_then_estimator(export_cfg):
    cfgs = tc.build_configs("credit", META, export_cfg, "/v", [2], "ensemble")
    assert list(cfgs) == ["credit_features", "credit_estimator", "credit"]
    ens = cfgs["credit"]
    steps = ens.ensemble_scheduling.step
    assert ens.platform == "ensemble"
    assert [s.model_name for s in steps] == ["credit_features", "credit_estimator"]
    assert [s.model_version for s in steps] == [2, 2]
    assert dict(steps[0].output_map) == {"features": "features"}
    assert list(cfgs["credit_features"].output[0].dims) == [4]


def test_set_versions_changes_policy_and_ensemble_steps(export_cfg):
    ens = tc.build_configs("credit", META, export_cfg, "/v", [2], "ensemble")["credit"]
    new = tc.set_versions(ens, [1])
    assert tc.served_versions(new) == [1]
    assert [s.model_version for s in new.ensemble_scheduling.step] == [1, 1]
    assert tc.served_versions(ens) == [2]


def test_auto_layout_is_single_and_unknown_layout_is_refused():
    assert tc.resolve_layout("auto") == "single"
    with pytest.raises(ValueError, match="layout"):
        tc.resolve_layout("graph")


@pytest.mark.parametrize("name", ["", "a/b", "x__candidate", "-x", "a b"])
def test_bad_model_names_are_refused(name):
    with pytest.raises(ValueError, match="model name"):
        tc.check_model_name(name)


def test_columns_to_wire_conventions():
    frame = pd.DataFrame({"income": [1, None, 3], "home": pd.Categorical(["rent", None, "own"]),
                          "code": [3.0, None, 7.5],
                          "when": pd.to_datetime(["2024-05-01", None, "2024-05-02 13:45"], format="ISO8601")})
    specs = [{"name": "income", "kind": "numeric"}, {"name": "home", "kind": "categorical"},
             {"name": "code", "kind": "categorical"}, {"name": "when", "kind": "datetime"}]
    cols = to_columns(frame, specs)
    assert cols["income"].dtype == np.float64 and np.isnan(cols["income"][1])
    assert cols["home"].tolist() == ["rent", None, "own"]
    assert cols["code"].tolist() == ["3", None, "7.5"]
    assert cols["when"].tolist() == ["2024-05-01", None, "2024-05-02T13:45"]


def test_json_rows_round_trip_keeps_missing_values():
    cols = {"x": np.array([1.5, np.nan]), "c": np.array(["a", None], dtype=object)}
    specs = [{"name": "x", "kind": "numeric"}, {"name": "c", "kind": "categorical"}]
    back = from_json_rows(json.loads(json.dumps(to_json_rows(cols, specs))))
    np.testing.assert_array_equal(back["x"], cols["x"])
    assert back["c"].tolist() == ["a", None]


def test_text_in_a_numeric_column_names_the_column():
    from engine.errors import DataError

    with pytest.raises(DataError, match="'x'"):
        to_columns(pd.DataFrame({"x": ["a", "b"]}), [{"name": "x", "kind": "numeric"}])


def test_decode_column_checks_shape_and_type(triton_io):
    np.testing.assert_array_equal(triton_io.decode_column(np.array([[1.0], [2.0]]), "numeric", "x"), [1.0, 2.0])
    assert triton_io.decode_column(np.array([[b"a"], [b""]], dtype=object), "categorical", "c").tolist() == [b"a", b""]
    with pytest.raises(triton_io.RequestError, match="'x'.*shape"):
        triton_io.decode_column(np.zeros((2, 2)), "numeric", "x")
    with pytest.raises(triton_io.RequestError, match="'x'.*numbers"):
        triton_io.decode_column(np.array([[b"a"]], dtype=object), "numeric", "x")
    with pytest.raises(triton_io.RequestError, match="missing input column 'x'"):
        triton_io.decode_column(None, "numeric", "x")


def test_requests_are_stacked_and_split_back(triton_io):
    parts = [{"a": np.array([1.0, 2.0])}, {"a": np.array([3.0])}]
    cols, sizes = triton_io.concat_columns(parts)
    assert sizes == [2, 1]
    back = triton_io.split_rows(cols["a"] * 10, sizes)
    assert [b.tolist() for b in back] == [[10.0, 20.0], [30.0]]


def test_outputs_are_encoded_as_batch_by_one(triton_io):
    lab = triton_io.encode_output(np.array(["good", "bad"], dtype=object), "TYPE_STRING")
    assert lab.shape == (2, 1) and lab[1, 0] == b"bad"
    assert triton_io.encode_output(np.array([0.5]), "TYPE_FP64").dtype == np.float64
    assert triton_io.encode_output(np.array([1]), "TYPE_INT64").dtype == np.int64


def test_clean_message_drops_tracebacks_and_paths(triton_io):
    msg = ('Traceback (most recent call last):\n  File "/srv/models/credit/1/model.py", line 3\nValueError: bad')
    assert triton_io.clean_message(msg) == "ValueError: bad"
    text = triton_io.clean_message(ValueError("cannot open /srv/models/credit/1/model.onnx: denied"))
    assert "/srv" not in text and "<path>" in text and "\n" not in text


def test_serving_requirements_pin_numpy_1_26_and_install_triton_without_deps():
    from engine.serve.tritonenv import read_requirements

    deps, no_deps = read_requirements()
    assert "numpy==1.26.4" in deps and any(d.startswith("onnxruntime==") for d in deps)
    assert all("==" in d for d in deps)
    assert no_deps == ["nvidia-pytriton==0.7.0"]


def test_serving_env_path_is_taken_from_the_project_root(tmp_path):
    from engine.serve.tritonenv import PROJECT_ROOT, env_ready, resolve_env_path

    assert resolve_env_path(".venv-triton") == PROJECT_ROOT / ".venv-triton"
    assert resolve_env_path(tmp_path / "env") == tmp_path / "env"
    assert not env_ready(tmp_path / "env")


def test_locate_server_prefers_an_explicit_binary(tmp_path):
    from engine.serve.tritonenv import locate_server

    exe = tmp_path / "tritonserver"
    exe.write_text("#!/bin/sh\n")
    found = locate_server(tmp_path / "no-env", binary=str(exe))
    assert found.executable == exe and found.source == "path" and found.backend_dir is None


def test_a_warm_standby_is_kept_only_below_the_served_version(export_cfg):
    from engine.serve.rollout import versions_to_serve

    cfg = tc.build_configs("credit", META, export_cfg, "", [1], "single")["credit"]
    assert versions_to_serve(cfg, 2, standby=1) == [1, 2]  # promote 2, keep 1 warm
    assert versions_to_serve(cfg, 1, standby=2) == [1]  # a higher standby would take the traffic
    both = tc.set_versions(cfg, [1, 2])
    assert versions_to_serve(both, 2) == [1, 2]  # reloading the served version keeps its standby
    assert versions_to_serve(both, 1) == [1]  # rolling back drops the newer version
