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


def test_input_streamed_in_chunks_or_from_parquet_gives_the_report_of_one_read(trident, reference_run):
    """The input is read a chunk at a time (sketches merge): small chunks, and a Parquet file, give the
    same statistics as reading the whole file at once."""
    import math

    later = make_credit(4000, 14, drifted=True)
    later.to_csv(trident.cwd / "later.csv", index=False)
    later.to_parquet(trident.cwd / "later.parquet", index=False)
    reports = {}
    for name, args in {"whole": ["--input", "later.csv"], "chunks": ["--input", "later.csv", "--chunk-rows", "700"],
                       "parquet": ["--input", "later.parquet", "--chunk-rows", "1500"]}.items():
        out = trident.cwd / f"{name}.json"
        res = trident("monitor", reference_run.name, *args, "--output", str(out))
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        reports[name] = json.loads(out.read_text())
    whole = reports["whole"]
    assert whole["rows"] == 4000 and whole["numeric"] and whole["categorical"]
    for other in ("chunks", "parquet"):
        rep = reports[other]
        assert rep["rows"] == 4000 and rep["n_drifted"] == whole["n_drifted"] and rep["drifted"] == whole["drifted"]
        for kind, keys in (("numeric", ("psi", "js", "ks", "wasserstein", "mean_cur", "std_cur", "missing_cur")),
                           ("categorical", ("psi", "chi2", "missing_cur"))):
            for feature, d in whole[kind].items():
                for k in keys:
                    a, b = d[k], rep[kind][feature][k]
                    assert (a is None and b is None) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (other, feature, k, a, b)


def test_bad_chunk_rows_is_a_clear_error(trident, reference_run):
    make_credit(200, 15).to_csv(trident.cwd / "s.csv", index=False)
    res = trident("monitor", reference_run.name, "--input", "s.csv", "--chunk-rows", "0")
    assert res.returncode == 2 and "--chunk-rows" in res.stderr and "Traceback" not in res.stderr
