"""The ``features`` stage with ``features.fit_partitions`` set: the pipeline is fitted on Dask partitions
of the training rows and gives the same matrices and fitted arrays as the in-memory fit."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.backend import cpu_backend


def _run(tmp_path, name, overrides, objects=False):
    from engine.config import compose
    from engine.data.synthetic import make_credit
    from engine.pipeline import RunContext
    from engine.registry.manifest import Manifest
    from engine.train.stage import features, split

    cfg = compose(["backend=cpu", "tracking.enabled=false", f"runs_dir={tmp_path}", "data.date_column=null",
                   "features.sample_rows=400", *overrides])
    run_dir = tmp_path / name
    run_dir.mkdir(parents=True)
    ctx = RunContext(cfg=cfg, run_id=name, run_dir=run_dir, backend=cpu_backend(), manifest=Manifest(name, run_dir))
    frame = make_credit(1500, seed=4).drop(columns=["application_date"])
    if objects:  # strings as Python objects, as older pandas and many readers give them
        frame = frame.astype({c: object for c in frame.columns if frame[c].dtype == "category"})
    ctx.state.update(frame=frame, y=frame["default"].to_numpy(), target="default", task="binary",
                     id_column="application_id")
    split(ctx)
    features(ctx)
    return ctx


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("partitioned")
    return _run(tmp, "memory", []), _run(tmp, "dask", ["features.fit_partitions=4"])


def test_partitioned_fit_builds_the_same_matrices(runs):
    memory, dask = runs
    for k in ("train", "valid", "test"):
        a, b = memory.state["X"][k], dask.state["X"][k]
        assert b.dtype == np.float32 and b.flags.f_contiguous
        np.testing.assert_array_equal(b, a, err_msg=k)
    assert memory.state["feature_names"] == dask.state["feature_names"]


def test_partitioned_fit_saves_the_same_arrays_and_records_its_partitions(runs):
    memory, dask = runs
    a = np.load(memory.run_dir / "features" / "features.npz")
    b = np.load(dask.run_dir / "features" / "features.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(b[key], a[key], err_msg=key)
    report = json.loads((dask.run_dir / "features_report.json").read_text())["pipeline"]
    assert report["fitted_on"]["partitions"] == 4
    assert report["fitted_on"]["rows"] == len(dask.state["splits"]["train"])


def test_negative_fit_partitions_is_a_config_error(tmp_path):
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="features.fit_partitions"):
        _run(tmp_path, "bad", ["features.fit_partitions=-1"])


def test_partitioned_fit_reports_what_the_in_memory_fit_reports(tmp_path):
    """Object-dtype strings included (Dask would turn them into Arrow strings): the reports differ only
    in the partitioned fit's own record of its partitions."""
    memory = _run(tmp_path, "memory", [], objects=True)
    dask = _run(tmp_path, "dask", ["features.fit_partitions=3"], objects=True)
    assert any(memory.state["frame"][c].dtype == object for c in memory.state["frame"].columns)
    reports = [json.loads((c.run_dir / "features_report.json").read_text()) for c in (memory, dask)]
    assert reports[1]["pipeline"].pop("fitted_on") == {"partitions": 3, "rows": len(dask.state["splits"]["train"])}
    assert reports[1]["pipeline"]["config"].pop("fit_partitions") == 3
    assert reports[0]["pipeline"]["config"].pop("fit_partitions") == 0
    for r in reports:
        r.pop("fit_seconds")
    assert reports[1] == reports[0]
