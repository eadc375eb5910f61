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


def test_device_times_spans_every_kernel_family_of_a_fit_and_restores_the_kernels(monkeypatch):
    """On the CuPy stand-in (NumPy underneath, host clocks for events): the wrapping, counting and
    restoring that gpu_check relies on."""
    import importlib.util
    import sys
    from pathlib import Path

    import numpy as np

    spec = importlib.util.spec_from_file_location(
        "cupy", Path(__file__).resolve().parents[1] / "cupy_standin" / "cupy" / "__init__.py")
    standin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standin)
    monkeypatch.setitem(sys.modules, "cupy", standin)

    from bench.gbdt import FIT_KERNELS, _models, device_times, make_data

    patched = [(m, n) for _, m, n in FIT_KERNELS] + [("engine.train.gbdt_device", "launch")]
    before = {(m, n): getattr(importlib.import_module(m), n) for m, n in patched}
    X, y, _, _ = make_data(3000, 6)
    out = device_times(lambda: _models(4)["trident_gbdt"](), X, y)
    assert {(m, n): getattr(importlib.import_module(m), n) for m, n in patched} == before  # restored
    calls = out["calls"]
    assert calls["gradients"] == 4 and calls["binning"] == 2  # a call per tree; edges + bins once
    assert calls["histograms"] >= 4 and calls["split search"] >= 4 and calls["partition"] >= 4
    assert 4 <= calls["leaf values"] <= 8  # one call per row buffer that holds leaves
    assert set(out["device_ms"]) == set(calls) and all(v >= 0 for v in out["device_ms"].values())
    assert out["wall_s"] > 0 and 0 < out["busy_share"] <= 1.0 + 1e-9
    assert np.isfinite(sum(out["device_ms"].values()))
