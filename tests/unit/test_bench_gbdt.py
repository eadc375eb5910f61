"""bench/gbdt.py helpers that gpu_check relies on, run on the CPU."""
from __future__ import annotations


def test_profile_fit_names_where_a_fit_spends_its_time():
    from bench.gbdt import _models, make_data, profile_fit

    X, y, _, _ = make_data(3000, 8)
    prof = profile_fit(lambda: _models(3)["trident_gbdt"](), X, y, top=5)
    assert prof["seconds"] > 0
    assert prof["kernel_launches"] == 0 and prof["launch_seconds"] == 0.0  # NumPy input: CPU twins, no CUDA launch
    assert len(prof["top_own_time"]) == 5 and len(prof["top_repo_cumulative"]) == 5
    labels = [row[0] for row in prof["top_repo_cumulative"]]
    assert labels[0].startswith("engine/train/gbdt.py:") and labels[0].endswith(" fit")  # the whole fit, first
    assert all(not lab.startswith("/") and ".venv" not in lab for lab in labels)  # this repository's code only
    calls, seconds = prof["top_repo_cumulative"][0][1:]
    assert calls == 1 and 0 < seconds <= prof["seconds"]
