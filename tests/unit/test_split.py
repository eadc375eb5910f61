"""Train / validation / test splits: partition, stratification, time order, seeds, the split stage."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.train.split import SPLITS, index_sha256, split_indices, subsample


def _ctx(tmp_path, overrides=()):
    from engine.backend import cpu_backend
    from engine.config import compose
    from engine.pipeline import RunContext
    from engine.registry.manifest import Manifest

    cfg = compose(["backend=cpu", "tracking.enabled=false", f"runs_dir={tmp_path}", *overrides])
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True)
    return RunContext(cfg=cfg, run_id="t", run_dir=run_dir, backend=cpu_backend(), manifest=Manifest("t", run_dir))


def test_splits_partition_the_rows_in_the_configured_sizes():
    y = (np.arange(1000) % 5 == 0).astype(int)
    s = split_indices(1000, y=y, fractions=(0.6, 0.2, 0.2), seed=1)
    allrows = np.concatenate([s[k] for k in SPLITS])
    assert sorted(allrows.tolist()) == list(range(1000))
    assert [len(s[k]) for k in SPLITS] == [600, 200, 200]
    assert all(s[k].dtype == np.int64 and np.all(np.diff(s[k]) > 0) for k in SPLITS)


def test_stratified_split_keeps_the_positive_rate_in_every_split():
    rng = np.random.default_rng(0)
    y = (rng.random(2003) < 0.13).astype(int)
    s = split_indices(len(y), y=y, seed=7)
    rate = y.mean()
    for k in SPLITS:
        # one row more or less of a class than the exact share, at most
        assert abs(y[s[k]].mean() - rate) <= 1.0 / len(s[k]) + 1e-12


def test_unstratified_split_is_a_plain_shuffle():
    y = np.r_[np.zeros(900, int), np.ones(100, int)]
    s = split_indices(1000, y=y, stratify=False, seed=3)
    assert [len(s[k]) for k in SPLITS] == [700, 150, 150]
    assert {y[s[k]].mean() for k in SPLITS} != {0.1}


def test_time_split_puts_the_oldest_rows_in_train_and_the_newest_in_test():
    rng = np.random.default_rng(1)
    dates = np.datetime64("2024-01-01") + rng.permutation(500).astype("timedelta64[D]")
    s = split_indices(500, fractions=(0.7, 0.15, 0.15), order_by=dates, seed=0)
    assert dates[s["train"]].max() < dates[s["valid"]].min()
    assert dates[s["valid"]].max() < dates[s["test"]].min()
    assert [len(s[k]) for k in SPLITS] == [350, 75, 75]


def test_time_split_sends_rows_without_a_date_to_train():
    dates = np.array(["2024-01-03", "NaT", "2024-01-01", "2024-01-05", "2024-01-02", "NaT", "2024-01-04",
                      "2024-01-06", "2024-01-07", "2024-01-08"], dtype="datetime64[ns]")
    s = split_indices(10, fractions=(0.6, 0.2, 0.2), order_by=dates)
    assert {1, 5} <= set(s["train"].tolist())
    assert s["test"].tolist() == [8, 9]


def test_the_same_seed_gives_the_same_split_and_another_seed_another():
    y = (np.arange(500) % 3 == 0).astype(int)
    a, b, c = (split_indices(500, y=y, seed=s) for s in (11, 11, 12))
    assert all(np.array_equal(a[k], b[k]) for k in SPLITS)
    assert not np.array_equal(a["train"], c["train"])


@pytest.mark.parametrize("fractions", [(0.7, 0.2, 0.2), (0.0, 0.5, 0.5), (0.8, 0.2, 0.0), (0.9, -0.1, 0.2)])
def test_bad_fractions_are_a_config_error_naming_model_split(fractions):
    with pytest.raises(ConfigError, match="model.split"):
        split_indices(100, fractions=fractions)


def test_index_hash_depends_on_the_rows_only():
    assert index_sha256(np.array([1, 2, 3], dtype=np.int32)) == index_sha256(np.array([1, 2, 3], dtype=np.int64))
    assert index_sha256(np.array([1, 2, 3])) != index_sha256(np.array([1, 2, 4]))


def test_subsample_keeps_class_shares_and_is_seeded():
    y = np.r_[np.zeros(800, int), np.ones(200, int)]
    a = subsample(y, 100, seed=5)
    assert len(a) == 100 and y[a].sum() == 20
    assert np.array_equal(a, subsample(y, 100, seed=5))
    assert len(subsample(y, 0)) == 1000


def _frame(n=600, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(np.int8)
    dates = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.permutation(n), unit="h")
    return pd.DataFrame({"x": rng.normal(size=n), "when": dates, "target": y}), y


def test_split_stage_orders_by_the_declared_date_and_records_hashes(tmp_path):
    from engine.train.stage import split

    ctx = _ctx(tmp_path, ["data.date_column=when"])
    frame, y = _frame()
    ctx.state.update(frame=frame, y=y, task="binary", target="target")
    split(ctx)
    rec = json.loads((ctx.run_dir / "splits.json").read_text())
    s = ctx.state["splits"]
    assert rec["method"] == "time" and rec["date_column"] == "when"
    assert frame["when"].iloc[s["train"]].max() < frame["when"].iloc[s["test"]].min()
    for k in SPLITS:
        assert rec["splits"][k]["index_sha256"] == index_sha256(s[k])
        assert rec["splits"][k]["rows"] == len(s[k])
        assert rec["splits"][k]["positive_rate"] == pytest.approx(float(y[s[k]].mean()))
    assert rec["seed"] == ctx.manifest["seeds"]["split"]
    assert any(f["path"] == "splits.json" for f in ctx.manifest["files"])


def test_split_stage_stratifies_without_a_date_column(tmp_path):
    from engine.train.stage import split

    ctx = _ctx(tmp_path, ["data.date_column=null"])
    frame, y = _frame()
    ctx.state.update(frame=frame, y=y, task="binary", target="target")
    split(ctx)
    rec = json.loads((ctx.run_dir / "splits.json").read_text())
    assert rec["method"] == "stratified"
    rates = [rec["splits"][k]["positive_rate"] for k in SPLITS]
    assert max(rates) - min(rates) < 0.02
