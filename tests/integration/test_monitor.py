"""``trident monitor``: drift of new data against the reference sketch a run saved."""
import json

import pytest

from engine.data.synthetic import make_credit

FAST = ["tracking=off", "backend=cpu", "until=reference"]


@pytest.fixture
def reference_run(trident):
    res = trident("run", "data.rows=4000", *FAST)
    assert res.returncode == 0, res.stderr[-2000:]
    run = next((trident.cwd / "runs").iterdir())
    m = json.loads((run / "manifest.json").read_text())
    assert any(f["path"] == "reference/sketch.json" for f in m["files"])
    return run


def test_drifted_data_is_flagged(trident, reference_run):
    make_credit(4000, 11, drifted=True).to_csv(trident.cwd / "later.csv", index=False)
    res = trident("monitor", reference_run.name, "monitor.drift_share=0.05", "--input", "later.csv", "--fail-on-drift")
    assert res.returncode == 4, res.stdout[-2000:] + res.stderr[-2000:]
    assert "monitor: DRIFT" in res.stdout and "income" in res.stdout
    report = json.loads((reference_run / "monitor" / "drift-later.json").read_text())
    assert report["drifted"] is True and report["rows"] == 4000


def test_data_from_the_same_distribution_is_not_flagged(trident, reference_run):
    make_credit(4000, 12).to_csv(trident.cwd / "same.csv", index=False)
    res = trident("monitor", reference_run.name, "--input", "same.csv", "--fail-on-drift")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "monitor: no drift: 0 of" in res.stdout


def test_missing_reference_column_is_named(trident, reference_run):
    make_credit(500, 13).drop(columns=["income"]).to_csv(trident.cwd / "short.csv", index=False)
    res = trident("monitor", reference_run.name, "--input", "short.csv")
    assert res.returncode == 2 and "income" in res.stderr and "Traceback" not in res.stderr
