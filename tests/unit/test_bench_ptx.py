"""``python -m bench ptx``: every CUDA kernel compiles for Hopper (sm_90) with Numba's NVVM and ptxas,
on this machine without a GPU (the CUDA simulator runs the kernels' Python but never compiles them),
none spills registers to local memory, and the hot loops' machine instructions (``--sass``) stay lean."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Every CUDA twin's kernels (module.function) that the suite must have compiled.
EXPECTED = {
    "kernels.binned_stats.kernel", "kernels.category_counts.kernel", "kernels.hashing.kernel",
    "kernels.gbdt_binning.kernel", "kernels.gbdt_loss.kernel", "kernels.gbdt_hist.zero",
    "kernels.gbdt_hist.subtract", "kernels.gbdt_split.per_feature", "kernels.gbdt_split.per_node",
    "kernels.gbdt_partition.count", "kernels.gbdt_partition.offsets", "kernels.gbdt_partition.scatter",
    "kernels.gbdt_predict.raw_kernel", "kernels.gbdt_predict.binned_kernel", "kernels.gbdt_predict.leaf_kernel",
    *(f"kernels.gbdt_level.{k}" for k in ("root_plan", "root_sums", "zero_level", "build_level", "subtract_level",
                                           "split_level", "plan_level", "count_level", "offsets_level",
                                           "scatter_level", "add_tree")),
}


def test_occupancy_follows_the_hopper_limits():
    sys.path.insert(0, str(REPO))
    from bench.ptx import occupancy

    assert occupancy(32, 0, 256) == 1.0  # 8 blocks x 256 threads
    assert occupancy(72, 1600, 256) == 0.375  # registers: 28 warps -> 3 blocks of 8 warps
    assert occupancy(40, 24576, 256) == 0.75  # registers allow 6 blocks; shared memory 9
    assert occupancy(32, 100_000, 256) == 0.25  # shared memory: 2 blocks
    assert occupancy(255, 0, 1024) == 0.0  # a 1,024-thread block does not fit in the registers


_SASS = """
        /*0000*/                   LDC R1, c[0x0][0x28] ;
.L_x_1:
        /*0010*/                   LDG.E R2, desc[UR4][R4.64] ;
        /*0020*/                   FADD R3, R2, R3 ;
.L_x_2:
        /*0030*/                   LDS R6, [R7] ;
        /*0040*/                   ATOMS.CAST.SPIN P0, [R7], R6, R8 ;
        /*0050*/              @!P0 BRA `(.L_x_2) ;
        /*0060*/                   LDG.E R9, desc[UR4][R4.64+0x4] ;
        /*0070*/               @P1 BRA `(.L_x_1) ;
        /*0080*/                   ATOMS.POPC.INC.32 RZ, [R8+URZ] ;
        /*0090*/                   BRA `(.L_x_3) ;
.L_x_3:
        /*00a0*/                   EXIT ;
"""


def test_sass_summary_finds_the_hot_loop_and_the_shared_compare_and_swaps():
    sys.path.insert(0, str(REPO))
    from bench.ptx import sass_summary

    got = sass_summary(_SASS)
    # the outer loop (0x10-0x70) holds both global loads; the forward branch to .L_x_3 is no loop
    assert got == {"instructions": 11, "loop_instructions": 7, "loop_loads": 2, "shared_cas": 1}


@pytest.mark.slow
def test_every_cuda_kernel_compiles_for_sm90_without_spills(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = tmp_path / "ptx.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "ptx", "--sass", "--json", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode == 3:
        pytest.skip(f"no CUDA compiler toolchain here: {proc.stderr.strip()}")
    res = json.loads(out.read_text()) if out.exists() else {}
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    kernels = res["kernels"]
    assert EXPECTED <= {k["kernel"] for k in kernels}, EXPECTED - {k["kernel"] for k in kernels}
    assert all(k["ok"] for k in kernels) and not res["failed_cases"]
    # (a variant compiled with launch bounds trades spills for occupancy on purpose)
    spills = {(k["kernel"], k["case"]): k["spill_bytes"] for k in kernels if k["spill_bytes"] and "bounds" not in k["case"]}
    assert not spills, spills
    assert all(0 < k["registers"] <= 255 and k["occupancy"] > 0 for k in kernels)
    assert "gbdt_level.build_level" in proc.stdout  # the printed table
    # machine instructions (toolchain pinned by uv.lock): a histogram update is one compare-and-swap
    # loop for the (gradient, hessian) pair, not three float atomics, each a loop of its own (30 for
    # a group of 10 features before); the drift kernel's loop costs under 45 instructions a value
    # (73 with a branch per value)
    by = {(k["kernel"], k["case"]): k for k in kernels}
    build = by[("kernels.gbdt_level.build_level", "gbdt histograms (host-driven)")]
    assert 0 < build["shared_cas"] <= 14, build
    drift = by[("kernels.binned_stats.kernel", "drift statistics, 10 bins, row-major float32")]
    assert drift["loop_loads"] == 8 and drift["loop_instructions"] / drift["loop_loads"] < 45, drift
