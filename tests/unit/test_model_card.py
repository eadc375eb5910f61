"""The model card: complete, self-contained (nothing to fetch) and byte-identical across identical runs."""
import json
import re

import numpy as np
import pandas as pd
import pytest

N = 900


def _frame():
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"income": rng.normal(50, 10, N), "debt": rng.gamma(2.0, 5.0, N),
                       "home": rng.choice(["rent", "own", "other"], N), "age": rng.integers(18, 80, N),
                       "gender": rng.choice(["f", "m"], N)})
    logit = 0.15 * (df.debt - 10) - 0.08 * (df.income - 50) + 0.8 * (df.home == "rent")
    y = (rng.random(N) < 1 / (1 + np.exp(-logit))).astype(int)
    df["status"] = np.where(y == 1, "bad", "good")
    return df, y


def _trained(ctx):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from engine.features.pipeline import FeaturePipeline
    from engine.train.candidate import Candidate

    df, y = _frame()
    splits = {"train": np.arange(0, 500), "valid": np.arange(500, 700), "test": np.arange(700, N)}
    raw = df.drop(columns=["status"])
    fp = FeaturePipeline().fit(raw.iloc[splits["train"]], y[splits["train"]], exclude=["age", "gender"])
    X = {k: np.ascontiguousarray(fp.transform(raw.iloc[v])) for k, v in splits.items()}
    ys = {k: y[v] for k, v in splits.items()}
    cands = [
        Candidate("logistic", LogisticRegression().fit(X["train"], ys["train"]), params={"C": 1.0},
                  cv={"metric": "roc_auc", "mean": 0.8, "std": 0.02}, interpretable=True),
        Candidate("random_forest", RandomForestClassifier(30, max_depth=5, random_state=0).fit(X["train"], ys["train"]),
                  params={"n_estimators": 30}, cv={"metric": "roc_auc", "mean": 0.79, "std": 0.03}),
    ]
    ctx.add_dataset("credit", df)
    ctx.state.update(frame=df, splits=splits, X=X, ysplit=ys, features=fp, candidates=cands, task="binary",
                     target="status", positive_label="bad", sensitive=["age", "gender", "religion"],
                     excluded={"age": "sensitive", "gender": "sensitive"})


STAGES = [("train", _trained), ("evaluate", "engine.evaluate.stage:evaluate"),
          ("select", "engine.evaluate.stage:select")]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from engine.config import compose
    from engine.pipeline import run_pipeline

    tmp = tmp_path_factory.mktemp("card")
    cfg = compose([f"runs_dir={tmp / 'runs'}", "backend=cpu", "tracking=off",
                   "kpi.thresholds=['roc_auc >= 0.6']"])
    return [run_pipeline(cfg, stages=STAGES) for _ in range(2)]


def test_card_is_byte_identical_across_identical_runs(two_runs):
    a, b = two_runs
    assert a.run_id != b.run_id
    for name in ("model_card.html", "model_card.json", "evaluation.json"):
        assert (a.run_dir / name).read_bytes() == (b.run_dir / name).read_bytes(), name
    assert a.run_id not in (a.run_dir / "model_card.html").read_text()


def test_html_is_self_contained(two_runs):
    html = (two_runs[0].run_dir / "model_card.html").read_text()
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"""\bsrc\s*=\s*["']?(?!data:)""", html)
    for href in re.findall(r"""href\s*=\s*["']([^"']*)""", html):
        assert href.startswith(("#", "data:")), href
    for url in re.findall(r"https?://[^\s\"'<>]+", html):
        assert url in ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"), url  # XML namespaces only
    assert html.count("<svg") >= 5  # ROC, PR, calibration, confusion matrix, importances


def test_card_records_candidates_choice_and_data(two_runs):
    ctx = two_runs[0]
    card = json.loads((ctx.run_dir / "model_card.json").read_text())
    names = {c["name"] for c in card["candidates"]}
    assert names == {"logistic", "random_forest"}
    for c in card["candidates"]:
        assert c["cv"]["mean"] > 0 and "roc_auc" in c["valid"] and isinstance(c["kpi_passed"], bool)
    chosen = [c for c in card["candidates"] if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["name"] == card["model"]["candidate"] == ctx.state["chosen"].name
    assert 0 < card["model"]["threshold"]["threshold"] < 1 and card["model"]["threshold"]["expected_cost"] >= 0
    assert card["data"]["splits"]["test"]["rows"] == N - 700
    assert card["data"]["datasets"]["credit"]["sha256"] == ctx.manifest["datasets"]["credit"]["sha256"]
    assert {"roc_auc", "pr_auc", "brier", "confusion", "calibration"} <= set(card["evaluation"]["test"])
    assert card["kpis"]["results"][0]["kpi"] == "roc_auc >= 0.6" and card["kpis"]["results"][0]["passed"]


def test_card_lists_features_used_and_dropped(two_runs):
    card = json.loads((two_runs[0].run_dir / "model_card.json").read_text())
    assert "income" in card["features"]["used"]
    assert card["features"]["excluded"] == {"age": "sensitive", "gender": "sensitive"}
    assert card["features"]["report"]["columns"]["gender"]["fate"] == "dropped"


def test_card_has_fairness_per_group_with_numeric_bands(two_runs):
    card = json.loads((two_runs[0].run_dir / "model_card.json").read_text())
    fair = card["fairness"]
    assert set(fair) == {"age", "gender"}
    assert {g["group"] for g in fair["gender"]["groups"]} == {"f", "m"}
    assert fair["age"]["bands"] and all(g["group"].startswith("[") for g in fair["age"]["groups"])
    g = fair["gender"]
    rates = [x["selection_rate"] for x in g["groups"]]
    assert g["demographic_parity_diff"] == pytest.approx(max(rates) - min(rates))
    assert g["equalized_odds_diff"] == pytest.approx(max(g["tpr_gap"], g["fpr_gap"]))
    assert card["features"]["sensitive"]["unavailable"] == ["religion"]
    assert any("religion" in note for note in card["limitations"])


def test_card_has_importances_of_the_chosen_model(two_runs):
    card = json.loads((two_runs[0].run_dir / "model_card.json").read_text())
    imp = card["importance"]
    assert imp["kind"] in ("coefficient", "impurity decrease")
    assert {f["name"] for f in imp["features"]} <= set(card["features"]["used"])
