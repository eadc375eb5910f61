"""bench/drift.py's compare-latency table, run on tiny frames."""
from __future__ import annotations


def test_batch_latency_times_compare_and_its_two_parts_beside_the_scipy_loop(capsys):
    from bench.drift import batch_latency, make_frames
    from engine.monitor import fit_reference

    ref, cur = make_frames(4000)
    rows = batch_latency(ref, cur, fit_reference(ref), [500, 10_000], repeat=1)
    assert [r["rows"] for r in rows] == [500, 4000]  # a batch larger than the frame is the whole frame
    for r in rows:
        assert r["compare_ms"] > 0 and r["stats_ms"] > 0 and r["report_ms"] > 0 and r["scipy_loop_ms"] > 0
    out = capsys.readouterr().out
    assert "compare latency on a batch" in out and "scipy per-column loop" in out and "4,000" in out
