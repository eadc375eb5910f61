"""Export of packaged models to a Triton model repository (the serving environment, no server)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.config import compose
from engine.errors import GateFailed
from engine.export import triton_config as tc
from engine.export.triton_repo import ExportError, check_parity, export_model, read_config
from engine.serve.columns import to_columns, to_json_rows

pytestmark = pytest.mark.triton


def _export(packaged, key, repo, version, cfg, frame, env, **kw):
    return export_model(packaged[key], repo, version, cfg, _sample(packaged[key], frame), env_path=env, **kw)


def _sample(folder, frame, n=64):
    specs = json.loads((folder / "model.json").read_text())["input_columns"]
    return to_json_rows(to_columns(frame.iloc[:n], specs), specs)


@pytest.fixture(scope="module")
def export_cfg():
    return compose([]).deploy.export


def test_export_writes_version_folder_config_and_runtime(tmp_path, packaged_models, credit_heldout, serving_env,
                                                         export_cfg):
    res = _export(packaged_models, "credit_v1", tmp_path, 1, export_cfg, credit_heldout, serving_env)
    v = tmp_path / "credit" / "1"
    for f in ("model.json", "model.onnx", "features/features.json", "model.py", "triton_io.py",
              "pipeline_runtime.py", "features_runtime.py", "sample.json"):
        assert (v / f).is_file(), f
    cfg = read_config(tmp_path, "credit")
    assert cfg.parameters["EXECUTION_ENV_PATH"].string_value == str(serving_env)
    assert tc.served_versions(cfg) == [1]
    assert res.parity["max_abs_score_diff"] == 0.0 and res.parity["label_mismatches"] == 0


def test_exported_runtime_runs_under_numpy_1_26(tmp_path, packaged_models, credit_heldout, serving_env, export_cfg):
    res = _export(packaged_models, "credit_v1", tmp_path, 1, export_cfg, credit_heldout, serving_env)
    assert res.parity["serving_numpy"].startswith("1.26")


def test_export_of_synthetic_model_with_dates_and_many_categories(tmp_path, packaged_models, synth_heldout,
                                                                    serving_env, export_cfg):
    res = _export(packaged_models, "synth", tmp_path, 4, export_cfg, synth_heldout, serving_env)
    cfg = read_config(tmp_path, "synth")
    types = {i.name: tc.pb().DataType.Name(i.data_type) for i in cfg.input}
    assert types["application_date"] == "TYPE_STRING" and types["income"] == "TYPE_FP64"
    assert res.parity["rows"] == 64 and res.parity["max_abs_score_diff"] == 0.0


def test_parity_check_refuses_a_folder_that_predicts_differently(tmp_path, packaged_models, credit_heldout,
                                                                 serving_env, export_cfg):
    _export(packaged_models, "credit_v2", tmp_path, 1, export_cfg, credit_heldout, serving_env)
    with pytest.raises(GateFailed, match=r"score differs by .* tolerance"):
        check_parity(packaged_models["credit_v1"], tmp_path / "credit" / "1", serving_env, 1e-9)


def test_a_version_is_immutable(tmp_path, packaged_models, credit_heldout, serving_env, export_cfg):
    sample = _sample(packaged_models["credit_v1"], credit_heldout)
    export_model(packaged_models["credit_v1"], tmp_path, 1, export_cfg, sample, env_path=serving_env)
    again = export_model(packaged_models["credit_v1"], tmp_path, 1, export_cfg, sample, env_path=serving_env)
    assert again.reused
    with pytest.raises(ExportError, match="immutable"):
        export_model(packaged_models["credit_v2"], tmp_path, 1, export_cfg, sample, env_path=serving_env)


def test_versions_with_other_inputs_cannot_share_a_model(tmp_path, packaged_models, credit_heldout, synth_heldout,
                                                         serving_env, export_cfg):
    _export(packaged_models, "credit_v1", tmp_path, 1, export_cfg, credit_heldout, serving_env)
    with pytest.raises(ExportError, match="other input columns"):
        _export(packaged_models, "synth", tmp_path, 2, export_cfg, synth_heldout, serving_env, name="credit")
    assert not (tmp_path / "credit" / "2").exists()


def test_ensemble_layout_exports_three_models(tmp_path, packaged_models, credit_heldout, serving_env, export_cfg):
    cfg = compose(["deploy.export.layout=ensemble"]).deploy.export
    res = _export(packaged_models, "credit_v1", tmp_path, 1, cfg, credit_heldout, serving_env)
    assert res.models == ["credit_features", "credit_estimator", "credit"]
    assert (tmp_path / "credit" / "1").is_dir() and (tmp_path / "credit_estimator" / "1" / "model.py").is_file()
    assert np.isclose(res.parity["max_abs_score_diff"], 0.0)
