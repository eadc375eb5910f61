"""Compile every CUDA kernel for a GPU, without a GPU: registers, spills, shared memory, occupancy.

``python -m bench ptx [--arch sm_90] [--json FILE]`` runs each CUDA twin's Python wrapper on small
NumPy inputs with the kernel launch replaced by a compile: Numba's NVVM turns each kernel (with the
argument types the wrapper passes) into PTX for the architecture, and ``ptxas -v`` assembles it and
reports what the kernel uses. Nothing runs on a device, so a machine without a GPU checks that every
kernel compiles (the CUDA simulator runs the kernels' Python, it does not compile them) and sees
what each would cost in registers and spills, and how many of its threads a multiprocessor could
hold.

Needs NVVM and ``ptxas``: the ``nvidia-cuda-nvcc-cu12`` wheel in the dev environment (``make env``).
Exit status: 0 all compiled, 1 a kernel failed to compile, 3 the toolchain is missing.

``--sass`` also disassembles each kernel (``nvdisasm``, from the ``nvidia-cuda-nvdisasm`` wheel of the
dev environment) and counts its machine instructions: those of its hot loop (the loop with the most
global loads; per load, the instructions a value or row costs) and its shared-memory compare-and-swap
atomics (a float atomic add on shared memory compiles to such a loop).

Occupancy is computed for a Hopper multiprocessor (sm_90: 65,536 registers, 2,048 threads, 32 blocks,
228 KiB shared memory, registers allocated per warp in units of 256) at the block size the wrapper
launches with.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: Modules whose kernels are launched through a module-level ``launch`` (patched to compile instead).
KERNEL_MODULES = (
    "kernels.binned_stats", "kernels.category_counts", "kernels.hashing", "kernels.gbdt_binning",
    "kernels.gbdt_loss", "kernels.gbdt_hist", "kernels.gbdt_split", "kernels.gbdt_partition",
    "kernels.gbdt_predict", "engine.train.gbdt_device",
)
#: Hopper (sm_90) multiprocessor limits used for the occupancy column.
SM_REGISTERS, SM_THREADS, SM_BLOCKS, SM_SHARED = 65536, 2048, 32, 228 * 1024


class ToolchainMissing(RuntimeError):
    """NVVM or ptxas is not installed."""


def _tool(name: str, wheel_dirs: tuple[str, ...], wheel: str) -> str:
    """A CUDA tool from an ``nvidia`` wheel (``nvidia/<dir>/bin/<name>``), else from PATH."""
    try:
        import nvidia  # type: ignore[import-not-found]

        for base in getattr(nvidia, "__path__", []):
            for sub in wheel_dirs:
                p = Path(base) / sub / "bin" / name
                if p.exists():
                    return str(p)
    except ImportError:
        pass
    found = shutil.which(name)
    if not found:
        raise ToolchainMissing(f"{name} not found: install the dev environment (make env: {wheel})")
    return found


def ptxas_path() -> str:
    """``ptxas`` from the nvidia-cuda-nvcc-cu12 wheel, else from PATH."""
    return _tool("ptxas", ("cuda_nvcc",), "nvidia-cuda-nvcc-cu12")


def nvdisasm_path() -> str:
    """``nvdisasm`` from the nvidia-cuda-nvdisasm wheel, else from PATH."""
    return _tool("nvdisasm", ("cu13", "cuda_nvdisasm"), "nvidia-cuda-nvdisasm")


_INSTR = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)(\.[A-Z0-9_.]+)?")
_LABEL = re.compile(r"^\s*(\.L_x_\d+):")
_BRANCH = re.compile(r"BRA `\((\.L_x_\d+)\)")


def sass_summary(text: str) -> dict[str, Any]:
    """Counts from ``nvdisasm -c`` output: instructions, the hot loop (the backward branch's body with
    the most global loads, the shortest on a tie: its instructions and loads) and the shared-memory
    compare-and-swap atomics (``ATOMS.CAS*``: a float atomic add on shared memory, or a
    compare-and-swap loop written out)."""
    lines = text.splitlines()
    instr = [(i, m.group(1), m.group(2) or "") for i, line in enumerate(lines) if (m := _INSTR.search(line))]
    labels = {m.group(1): i for i, line in enumerate(lines) if (m := _LABEL.match(line))}
    best: tuple[int, int] | None = None  # (loads, instructions)
    for i, line in enumerate(lines):
        m = _BRANCH.search(line)
        if not m or labels.get(m.group(1), i) >= i:
            continue
        lo = labels[m.group(1)]
        body = [(op, mod) for j, op, mod in instr if lo <= j <= i]
        loads = sum(1 for op, _ in body if op == "LDG")
        if loads and (best is None or (loads, -len(body)) > (best[0], -best[1])):
            best = (loads, len(body))
    return {
        "instructions": len(instr),
        "loop_instructions": best[1] if best else 0,
        "loop_loads": best[0] if best else 0,
        "shared_cas": sum(1 for _, op, mod in instr if op == "ATOMS" and mod.startswith(".CAS")),
    }


def _offline_compiler(cc: tuple[int, int]) -> Any:
    """``numba.cuda``, set up to compile without a driver: NVRTC (absent from the nvcc wheel) is only
    asked which architectures it supports and where it lives, so both answers are given here."""
    from kernels._cuda import cuda

    numba_cuda = cuda()
    import numba.cuda.cuda_paths as paths
    import numba.cuda.cudadrv.nvrtc as nvrtc
    import numba.cuda.dispatcher as dispatcher

    nvrtc.get_supported_ccs = lambda: ((7, 5), (8, 0), (8, 6), (8, 9), (9, 0), cc)
    real_nvrtc_path = paths._get_nvrtc_path

    def nvrtc_path() -> Any:
        try:
            return real_nvrtc_path()
        except Exception:  # not needed to compile Numba kernels to PTX
            return ("not installed", None)

    paths._get_nvrtc_path = nvrtc_path
    # device functions ask the current device for its compute capability
    dispatcher.get_current_device = lambda: type("Device", (), {"compute_capability": cc})()
    try:
        from numba.cuda.cudadrv.nvvm import NVVM

        NVVM()
    except Exception as exc:
        raise ToolchainMissing(f"NVVM not found: {exc}") from exc
    return numba_cuda


def occupancy(registers: int, shared: int, threads: int) -> float:
    """Share of a multiprocessor's threads resident at ``threads`` a block (sm_90 limits)."""
    warps = -(-threads // 32)
    per_warp = -(-max(registers, 1) * 32 // 256) * 256
    by_regs = (SM_REGISTERS // per_warp) // warps
    by_smem = SM_SHARED // (shared + 1024) if shared else SM_BLOCKS
    blocks = max(0, min(by_regs, by_smem, SM_THREADS // threads, SM_BLOCKS))
    return blocks * threads / SM_THREADS


class Compiler:
    """Stands in for ``launch``: compiles each (kernel, argument types) once and records its use."""

    def __init__(self, cc: tuple[int, int], ptxas: str, workdir: str, nvdisasm: str | None = None) -> None:
        self.cc, self.ptxas, self.workdir, self.nvdisasm = cc, ptxas, workdir, nvdisasm
        self.cuda = _offline_compiler(cc)
        self.seen: dict[tuple[int, Any], dict[str, Any]] = {}
        self.case = ""

    def __call__(self, kernel: Any, griddim: Any, blockdim: Any, *args: Any) -> None:
        import numba

        func = kernel.py_func
        name = f"{func.__module__}.{func.__name__}"
        sig = tuple(numba.typeof(a) for a in args)
        key = (id(kernel), sig)  # a kernel specialised at compile time is its own object
        threads = int(np.prod(blockdim)) if isinstance(blockdim, (tuple, list)) else int(blockdim)
        if key in self.seen:
            return
        rec: dict[str, Any] = {"kernel": name, "case": self.case, "signature": ", ".join(str(t) for t in sig),
                               "threads": threads}
        t0 = time.perf_counter()
        try:
            bounds = getattr(kernel, "targetoptions", {}).get("launch_bounds")
            ptx, _ = self.cuda.compile_ptx(func, sig, cc=self.cc, launch_bounds=bounds)
            path = Path(self.workdir) / f"k{len(self.seen)}.ptx"
            path.write_text(ptx)
            cubin = path.with_suffix(".cubin") if self.nvdisasm else None
            out = subprocess.run([self.ptxas, f"-arch=sm_{self.cc[0]}{self.cc[1]}", "-v", str(path), "-o",
                                  str(cubin) if cubin else os.devnull], capture_output=True, text=True, timeout=300)
            if out.returncode != 0:
                raise RuntimeError(out.stderr.strip()[-500:])
            rec.update(_ptxas_info(out.stderr))
            if cubin:
                dis = subprocess.run([self.nvdisasm, "-c", str(cubin)], capture_output=True, text=True, timeout=300)
                if dis.returncode != 0:
                    raise RuntimeError(f"nvdisasm: {dis.stderr.strip()[-500:]}")
                rec.update(sass_summary(dis.stdout))
            rec["occupancy"] = occupancy(rec["registers"], rec["shared_bytes"], threads)
            rec["ok"] = True
        except Exception as exc:  # reported, not raised: one failing kernel does not hide the others
            rec.update(ok=False, error=f"{type(exc).__name__}: {str(exc).splitlines()[-1] if str(exc) else ''}"[:300])
        rec["compile_s"] = time.perf_counter() - t0
        self.seen[key] = rec


def _ptxas_info(text: str) -> dict[str, Any]:
    regs = re.search(r"Used (\d+) registers", text)
    spill_st = re.search(r"(\d+) bytes spill stores", text)
    spill_ld = re.search(r"(\d+) bytes spill loads", text)
    smem = re.search(r"(\d+) bytes smem", text)
    return {
        "registers": int(regs.group(1)) if regs else 0,
        "spill_bytes": (int(spill_st.group(1)) if spill_st else 0) + (int(spill_ld.group(1)) if spill_ld else 0),
        "shared_bytes": int(smem.group(1)) if smem else 0,
    }


def _patch(compiler: Compiler) -> None:
    """Every module's ``launch`` compiles; device I/O stays on the host, in the input's layout (as a CuPy
    input's does: a Fortran-ordered case compiles the column-major kernel); a 132-multiprocessor GPU."""
    import importlib

    import kernels._cuda as kc

    for name in KERNEL_MODULES:
        setattr(importlib.import_module(name), "launch", compiler)
    kc.multiprocessors = lambda: 132
    kc.DeviceIO.to_device = lambda self, a: np.asarray(a)
    kc.DeviceIO.full = lambda self, shape, value, dtype: np.full(shape, value, dtype=dtype)
    kc.DeviceIO.result = lambda self, d: d


def cases() -> list[tuple[str, Callable[[], Any]]]:
    """(label, call) pairs that launch every CUDA twin with the argument types it uses."""
    from engine.train.gbdt_device import DeviceGrowth
    from engine.train.gbdt_grow import GrowParams
    from kernels import binned_stats as bs
    from kernels import category_counts as cc
    from kernels import gbdt_binning as gb
    from kernels import gbdt_hist as gh
    from kernels import gbdt_loss as gl
    from kernels import gbdt_partition as gp
    from kernels import gbdt_predict as pr
    from kernels import gbdt_split as gs
    from kernels import hashing as hs

    rng = np.random.default_rng(0)
    n, f = 4096, 20
    x32 = rng.normal(size=(n, f)).astype(np.float32)
    edges10 = np.sort(rng.normal(size=(f, 11)), axis=1)
    edges100 = np.sort(rng.normal(size=(f, 101)), axis=1)
    codes = rng.integers(-1, 9, size=(n, 5)).astype(np.int32)
    bins = rng.integers(0, 255, size=(n, f), dtype=np.uint8)
    bins_t = np.ascontiguousarray(bins.T)
    g2 = rng.normal(size=(n, 2)).astype(np.float32)
    rows = np.arange(n, dtype=np.int32)
    hist = gh.new_pool(4, f)
    feats = np.arange(f)
    nb = np.full(f, 255)
    forest = pr.Forest(np.array([0]), np.array([0, -1, -1], np.int32), np.array([0.0, 0, 0], np.float32),
                       np.array([7, 0, 0], np.int32), np.array([1, 0, 0], np.uint8), np.array([1, 0, 0], np.int32),
                       np.array([2, 0, 0], np.int32), np.array([0.0, -1.0, 1.0]))

    def level_growth() -> None:
        g = DeviceGrowth(bins, bins_t, nb, GrowParams(max_depth=6), np.zeros(n, np.int32))
        g._launches(g2, rows, feats, [])
        gd = sys.modules["engine.train.gbdt_device"]
        gd.launch(g.k.add_tree, 1, 256, bins, g.ni, g.nf, np.zeros(n))

    return [
        ("drift statistics, 10 bins, row-major float32", lambda: bs.binned_stats_cuda(x32, edges10)),
        ("drift statistics, 10 bins, row-major float32, bounds for 4 blocks/SM",
         lambda: bs.CudaBinnedStats(x32, edges10, blocks_per_sm=4).launch()),
        ("drift statistics, 10 bins, row-major float32, 4 loads in flight, bounds for 4 blocks/SM",
         lambda: bs.CudaBinnedStats(x32, edges10, blocks_per_sm=4, unroll=4).launch()),
        ("drift statistics, 10 bins, column-major float32", lambda: bs.binned_stats_cuda(np.asfortranarray(x32), edges10)),
        ("drift statistics, 10 bins, row-major float64", lambda: bs.binned_stats_cuda(x32.astype(np.float64), edges10)),
        ("drift statistics, 100 bins (binary search)", lambda: bs.binned_stats_cuda(x32, edges100)),
        ("category counts, row-major", lambda: cc.category_counts_cuda(codes, np.full(5, 9))),
        ("category counts, column-major", lambda: cc.category_counts_cuda(np.asfortranarray(codes), np.full(5, 9))),
        ("hashing", lambda: hs.hash_bytes_cuda(np.frombuffer(b"abcdefgh" * 64, np.uint8), np.arange(0, 513, 8))),
        ("gbdt binning", lambda: gb.apply_bins_cuda(x32, *gb.bin_edges(x32, 255))),
        ("gbdt gradients", lambda: gl.gradients_cuda("log_loss", rng.normal(size=n), (rng.random(n) < 0.5).astype(np.float32))),
        ("gbdt histograms (host-driven)", lambda: (
            gh.build_histograms_cuda(bins, g2, rows, [0, 2048], [2048, 2048], [0, 1], feats, hist),
            gh.subtract_histograms_cuda(hist, [0], [1], feats))),
        ("gbdt split search (host-driven)", lambda: gs.find_splits_cuda(hist, [0, 1], [[0.0, 10.0, 2048], [0.0, 10.0, 2048]],
                                                                         feats, nb, gs.SplitParams())),
        ("gbdt partition (host-driven)", lambda: gp.partition_rows_cuda(bins_t, rows, rows.copy(), [0], [n], [3], [100], [1])),
        ("gbdt prediction and leaf values", lambda: (
            pr.predict_raw_cuda(x32, forest, np.zeros(n)), pr.predict_binned_cuda(bins, forest, np.zeros(n)),
            pr.add_leaf_values_cuda(np.zeros(n), rows, [0, 2048], [2048, 2048], [1.0, -1.0]))),
        ("gbdt device-resident level kernels", level_growth),
    ]


def run(arch: str = "sm_90", sass: bool = False) -> dict[str, Any]:
    """Compile every case's kernels; the per-kernel records and any case that failed outright (with
    ``sass``, each record also has :func:`sass_summary`'s counts)."""
    m = re.fullmatch(r"sm_(\d)(\d+)", arch)
    if not m:
        raise ValueError(f"--arch: expected sm_XY (e.g. sm_90), got {arch!r}")
    cc = (int(m.group(1)), int(m.group(2)))
    ptxas = ptxas_path()
    dis = nvdisasm_path() if sass else None
    with tempfile.TemporaryDirectory(prefix="trident-ptx-") as work:
        compiler = Compiler(cc, ptxas, work, dis)
        _patch(compiler)
        failed_cases = []
        for label, call in cases():
            compiler.case = label
            before = len(compiler.seen)
            try:
                call()
            except Exception as exc:  # after its launches: the wrapper read a result it cannot have here
                if len(compiler.seen) == before:
                    failed_cases.append({"case": label, "error": f"{type(exc).__name__}: {exc}"[:300]})
    return {"arch": arch, "ptxas": ptxas, "kernels": list(compiler.seen.values()), "failed_cases": failed_cases}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench ptx", description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="sm_90", help="GPU architecture to compile for (default sm_90, Hopper)")
    p.add_argument("--json", help="also write the records to this file")
    p.add_argument("--sass", action="store_true",
                   help="also count each kernel's machine instructions (hot loop, shared compare-and-swap atomics)")
    args = p.parse_args(argv)
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        print("bench ptx: unset NUMBA_ENABLE_CUDASIM (the simulator does not compile kernels)", file=sys.stderr)
        return 2
    try:
        res = run(args.arch, sass=args.sass)
    except ToolchainMissing as exc:
        print(f"bench ptx: {exc}", file=sys.stderr)
        return 3
    from bench.common import print_table

    rows = []
    for r in res["kernels"]:
        short = r["kernel"].replace("kernels.", "").replace("engine.train.", "")
        if r["ok"]:
            rows.append([short, r["case"], r["threads"], r["registers"], r["spill_bytes"], r["shared_bytes"],
                         f"{r['occupancy']:.0%}"])
        else:
            rows.append([short, r["case"], r["threads"], "FAILED", r["error"], "", ""])
    print_table(f"CUDA kernels compiled for {res['arch']} (ptxas -v), without a GPU",
                ["kernel", "case", "threads/block", "registers", "spill bytes", "shared bytes", "occupancy"], rows)
    if args.sass:
        srows = []
        for r in res["kernels"]:
            if r["ok"]:
                per = f"{r['loop_instructions'] / r['loop_loads']:.1f}" if r["loop_loads"] else ""
                srows.append([r["kernel"].replace("kernels.", "").replace("engine.train.", ""), r["case"],
                              r["instructions"], r["loop_instructions"], r["loop_loads"], per, r["shared_cas"]])
        print_table(f"Machine instructions ({res['arch']} SASS, nvdisasm)",
                    ["kernel", "case", "instructions", "hot loop", "its global loads", "per load", "shared CAS"], srows)
    for c in res["failed_cases"]:
        print(f"case failed before launching: {c['case']}: {c['error']}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    bad = [r for r in res["kernels"] if not r["ok"]] + res["failed_cases"]
    print(f"{len(res['kernels'])} kernel variants compiled, {len(bad)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
