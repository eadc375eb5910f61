"""Registration in a real MLflow sqlite store and embedded prediction from the registry and the run folder."""
import json
import os

import numpy as np
import pandas as pd
import pytest

import engine
from engine.errors import DataError, TridentError

N = 900


def _frame():
    rng = np.random.default_rng(11)
    df = pd.DataFrame({"income": rng.normal(50, 10, N), "debt": rng.gamma(2.0, 5.0, N),
                       "home": rng.choice(["rent", "own", "other"], N), "gender": rng.choice(["f", "m"], N)})
    df.loc[rng.random(N) < 0.05, "income"] = np.nan
    logit = 0.15 * (df.debt - 10) - 0.08 * (df.income.fillna(50) - 50) + 0.8 * (df.home == "rent")
    y = (rng.random(N) < 1 / (1 + np.exp(-logit))).astype(int)
    df["status"] = np.where(y == 1, "bad", "good")
    return df, y


SPLITS = {"train": np.arange(0, 500), "valid": np.arange(500, 700), "test": np.arange(700, N)}


def _trained(ctx):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from engine.features.pipeline import FeaturePipeline
    from engine.train.candidate import Candidate

    df, y = _frame()
    raw = df.drop(columns=["status"])
    fp = FeaturePipeline().fit(raw.iloc[SPLITS["train"]], y[SPLITS["train"]], exclude=["gender"])
    fp.save(ctx.path("features"))
    X = {k: np.ascontiguousarray(fp.transform(raw.iloc[v])) for k, v in SPLITS.items()}
    ys = {k: y[v] for k, v in SPLITS.items()}
    cands = [Candidate("logistic", LogisticRegression().fit(X["train"], ys["train"]), interpretable=True),
             Candidate("random_forest", RandomForestClassifier(30, max_depth=5, random_state=0).fit(X["train"],
                                                                                                   ys["train"]))]
    ctx.state.update(frame=df, splits=SPLITS, X=X, ysplit=ys, features=fp, candidates=cands, task="binary",
                     target="status", positive_label="bad", sensitive=["gender"])


STAGES = [("train", _trained), ("evaluate", "engine.evaluate.stage:evaluate"),
          ("select", "engine.evaluate.stage:select"), ("register", "engine.registry.stage:register")]
NAME = "credit_test"


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    from engine.config import compose
    from engine.pipeline import run_pipeline

    tmp = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    cfg = compose([f"runs_dir={tmp / 'runs'}", "backend=cpu", f"tracking.uri={uri}",
                   "kpi.thresholds=['roc_auc >= 0.6']", f"model.registered_name={NAME}"])
    ctx = run_pipeline(cfg, stages=STAGES)
    assert ctx.manifest["status"] == "succeeded"
    return {"ctx": ctx, "uri": uri, "tmp": tmp, "cache": tmp / "cache"}


@pytest.fixture(scope="module")
def raw_test():
    df, _ = _frame()
    return df.iloc[SPLITS["test"]].drop(columns=["status"])


def _expected(ctx, frame):
    est = ctx.state["chosen"].estimator
    return est.predict_proba(np.ascontiguousarray(ctx.state["features"].transform(frame)))[:, 1]


def test_version_is_registered_with_challenger_alias_and_lineage_tags(registered):
    from mlflow import MlflowClient

    ctx, c = registered["ctx"], MlflowClient(registered["uri"])
    rec = ctx.manifest["registered_model"]
    assert rec["name"] == NAME and rec["alias"] == "challenger"
    mv = c.get_model_version_by_alias(NAME, "challenger")
    assert str(mv.version) == rec["version"] and mv.run_id == ctx.manifest["mlflow"]["run_id"]
    assert mv.tags["trident.run_id"] == ctx.run_id
    meta = json.loads((ctx.run_dir / "model" / "model.json").read_text())
    for rel, digest in meta["files"].items():
        assert mv.tags[f"trident.sha256.{rel}"] == digest
    assert "champion" not in c.get_registered_model(NAME).aliases
    artifacts = {a.path for a in c.list_artifacts(mv.run_id, "model_card")}
    assert {"model_card/model_card.html", "model_card/model_card.json"} <= artifacts


def test_manifest_lists_every_model_file_with_its_hash(registered):
    from engine.atomic import sha256_file

    ctx = registered["ctx"]
    files = {f["path"]: f["sha256"] for f in ctx.manifest["files"]}
    for rel in ("model/model.json", "model/model.onnx", "model/features/features.json", "model_card.html"):
        assert files[rel] == sha256_file(ctx.run_dir / rel)
    gates = ctx.manifest["gates"]
    assert gates["kpi"]["passed"] and gates["onnx_parity"]["passed"] and gates["pipeline_parity"]["passed"]
    assert gates["onnx_parity"]["max_abs_diff"] <= gates["onnx_parity"]["tolerance"] == 1e-4
    assert ctx.state["model_dir"] == ctx.run_dir / "model"


def test_load_by_alias_predicts_like_the_in_process_model(registered, raw_test):
    ctx = registered["ctx"]
    model = engine.load(f"models:/{NAME}@challenger", tracking_uri=registered["uri"], cache_dir=registered["cache"])
    out = model.predict(raw_test)
    assert list(out.columns) == ["score", "label"] and out.index.equals(raw_test.index)
    np.testing.assert_allclose(out["score"].to_numpy(), _expected(ctx, raw_test), atol=1e-5)
    expected_label = np.where(out["score"] >= ctx.state["threshold"], "bad", "good")
    assert (out["label"].to_numpy() == expected_label).all()
    proba = model.predict_proba(raw_test)
    assert proba.shape == (len(raw_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_load_by_version_and_by_run_folder_agree(registered, raw_test, monkeypatch):
    ctx = registered["ctx"]
    by_version = engine.load(f"models:/{NAME}/1", tracking_uri=registered["uri"], cache_dir=registered["cache"])
    monkeypatch.chdir(registered["tmp"])
    by_run = engine.load(f"runs/{ctx.run_id}")
    by_folder = engine.load(f"runs/{ctx.run_id}/model")
    expected = _expected(ctx, raw_test)
    for model in (by_version, by_run, by_folder):
        np.testing.assert_allclose(model.predict(raw_test)["score"].to_numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("uri, words", [
    (f"models:/{NAME}@nope", ["no alias 'nope'", "challenger"]),
    (f"models:/{NAME}/99", ["no version 99", "versions: 1"]),
    ("models:/no_such_model@challenger", ["no registered model 'no_such_model'"]),
])
def test_unknown_alias_version_or_name_is_a_clear_error(registered, uri, words):
    with pytest.raises(TridentError) as err:
        engine.load(uri, tracking_uri=registered["uri"], cache_dir=registered["cache"])
    for w in words:
        assert w in str(err.value)


def test_unknown_run_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TridentError, match="no model at 'runs/20000101-000000-abcdef'"):
        engine.load("runs/20000101-000000-abcdef")


def test_missing_columns_are_named(registered, raw_test):
    model = engine.load(str(registered["ctx"].run_dir))
    with pytest.raises(DataError) as err:
        model.predict(raw_test.drop(columns=["income", "home"]))
    assert "'income'" in str(err.value) and "'home'" in str(err.value)


def test_wrong_dtype_names_the_column(registered, raw_test):
    model = engine.load(str(registered["ctx"].run_dir))
    bad = raw_test.copy()
    bad["debt"] = bad["debt"].map(lambda v: f"{v:.1f} EUR").astype(object)
    with pytest.raises(DataError, match="'debt'"):
        model.predict(bad)


def test_sensitive_column_is_not_needed(registered, raw_test):
    model = engine.load(str(registered["ctx"].run_dir))
    assert "gender" not in model.input_columns
    assert len(model.predict(raw_test.drop(columns=["gender"]))) == len(raw_test)


def test_tampered_model_file_is_refused(registered, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(registered["ctx"].run_dir / "model", folder)
    with open(folder / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(TridentError, match="model.onnx does not match its recorded SHA-256"):
        engine.load(str(folder))


def test_tracking_off_packages_but_does_not_register(tmp_path, raw_test):
    from engine.config import compose
    from engine.pipeline import run_pipeline

    cfg = compose([f"runs_dir={tmp_path / 'runs'}", "backend=cpu", "tracking=off",
                   "kpi.thresholds=['roc_auc >= 0.6']"])
    ctx = run_pipeline(cfg, stages=STAGES)
    assert ctx.manifest["status"] == "succeeded"
    rec = ctx.manifest["registered_model"]
    assert rec["registered"] is False and "tracking" in rec["reason"]
    model = engine.load(str(ctx.run_dir))
    np.testing.assert_allclose(model.predict(raw_test)["score"].to_numpy(), _expected(ctx, raw_test), atol=1e-5)
    assert not os.path.exists(tmp_path / "mlflow.db")
