"""Device-resident growth of a depth-wise tree: every kernel works on a whole tree level, and the
tree's shape stays on the device until the tree is finished.

The host-driven grower (:mod:`engine.train.gbdt_grow`) reads each level's best splits back before it
can plan the next level: one device-to-host wait per level, during which the device idles while the
host plans and launches. Here the planning is a kernel too, so a tree is a fixed sequence of launches
whose sizes depend only on the row count and the depth, and the host waits once per tree (to copy the
finished tree back).

Node table (heap layout)
------------------------
Node ``h`` has children ``2h + 1`` (left) and ``2h + 2`` (right); level ``d`` holds nodes
``2^d - 1 .. 2^(d+1) - 2``. ``ni`` (int64, :data:`N_INT` columns) and ``nf`` (float64, :data:`N_FLOAT`
columns) hold, per node: its range of positions in the row-index buffer of its level's parity
(``START``, ``COUNT``, as in the host grower), its split (``FEAT``, ``BIN``, ``ML``), its ``STATE``
(:data:`ABSENT`, :data:`LEAF`, :data:`SPLIT`), whether it may split (``CAN``), how its histogram is made
(``MODE``: :data:`BUILD` from its rows, :data:`SUBTRACT` as parent minus sibling, or none), its totals
``(G, H, C)``, the split's ``GAIN`` and left totals ``(GL, HL, CL)``, and its leaf ``VALUE``.

Per level ``d`` (``first = 2^d - 1``, ``slots = 2^d``):

1. :func:`split_level`: a block per (node, feature) scans the node's histogram (the CUDA split twin's
   block scan, which forms the CPU scan's running sums in its order, so equal histograms give equal
   splits);
2. :func:`plan_level` (one block): picks each node's best feature, creates the children (ranges, totals,
   whether they may split, leaf values, which child's histogram is built and which is subtracted), and
   writes the block tables of the partition and of the next level's histogram build;
3. :func:`count_level`, :func:`offsets_level`, :func:`scatter_level`: the stable partition of the split
   nodes' rows into the other buffer (the CUDA partition twin's three passes, on the planned table);
4. :func:`zero_level`, :func:`build_level`, :func:`subtract_level`: the next level's histograms.

Grids are sized by upper bounds known on the host (rows and depth); a block past the planned count
(``cnt``) returns at once. Level histograms live in two pools (even and odd levels), slot ``h - first``.
The row updates of a finished tree (:func:`add_tree`) walk the heap per row on the bin matrix.

These kernels are CUDA only: their CPU counterpart is the host grower driving the CPU twins, which the
tests compare them with (under the CUDA simulator).
"""
from __future__ import annotations

import functools
import math
from types import SimpleNamespace

__all__ = [
    "ABSENT", "BUILD", "LEAF", "N_FLOAT", "N_INT", "SPLIT", "SUBTRACT", "TILE", "level_kernels",
]

# int64 node columns
START, COUNT, FEAT, BIN, ML, STATE, CAN, MODE = range(8)
N_INT = 8
# float64 node columns
G, H, C, GAIN, GL, HL, CL, VALUE = range(8)
N_FLOAT = 8
# STATE
ABSENT, LEAF, SPLIT = 0, 1, 2
# MODE
NO_HIST, BUILD, SUBTRACT = 0, 1, 2
# cnt entries: blocks of the planned partition and histogram build
PART_BLOCKS, BUILD_BLOCKS = 0, 1
#: Partition blocks the offsets kernel scans per shared-memory tile.
TILE = 1024
#: Largest level (nodes) a plan handles: trees up to depth 10 grow on the device.
MAX_LEVEL = 512


@functools.cache
def level_kernels(fg: int, threads: int, items: int) -> SimpleNamespace:
    """Compile the level kernels (attributes named as the module doc's): histograms in groups of ``fg``
    features, ``threads`` threads a block, ``items`` consecutive positions a thread in the partition's
    scatter pass."""
    import numpy as np
    from numba import float64, int64, uint32, uint64

    float32_np = np.float32  # the dtype of a view (a NumPy dtype, also under the simulator)

    from kernels._cuda import cuda as _cuda
    from kernels._cuda import simulator
    from kernels.gbdt_partition import device_functions
    from kernels.gbdt_split import block_scan_factory, scan_threads

    global cuda  # module global: the CUDA simulator swaps it for its fake module
    cuda = _cuda()
    pairs = fg * 256  # (feature, bin) cells of a block's histograms
    scan_into = block_scan_factory()
    nt_scan = scan_threads()
    goes_left, scatter_block = device_functions(threads, items)
    inf = math.inf
    sim = simulator()

    @cuda.jit(device=True)
    def leaf_value(g, h, lr, l2):  # pragma: no cover - compiled
        den = h + l2
        if den > 0.0:
            return -lr * g / den
        return 0.0

    @cuda.jit(device=True)
    def may_split(depth, max_depth, count, hess, msl, mcw):  # pragma: no cover - compiled
        if depth >= max_depth:
            return 0
        if count >= 2 * msl and hess >= 2 * mcw:
            return 1
        return 0

    @cuda.jit(device=True)
    def make_child(ni, nf, c, start, count, g, h, depth, max_depth, lr, l2, mcw, msl):  # pragma: no cover - compiled
        # a new leaf at heap index c: its range, totals and value; returns (and records) whether it may split
        ni[c, START] = start
        ni[c, COUNT] = count
        ni[c, STATE] = LEAF
        nf[c, G] = g
        nf[c, H] = h
        nf[c, C] = float64(count)
        nf[c, VALUE] = leaf_value(g, h, lr, l2)
        can = may_split(depth, max_depth, count, h, msl, mcw)
        ni[c, CAN] = can
        return can

    @cuda.jit
    def root_plan(ni, m, hchunk, bt_node, bt_lo, bt_hi, cnt):  # pragma: no cover
        # the root owns positions 0 .. m - 1; its histogram is built in blocks of hchunk positions
        tid = cuda.threadIdx.x
        nb = (m + hchunk - 1) // hchunk
        if tid == 0:
            ni[0, START] = 0
            ni[0, COUNT] = m
            ni[0, STATE] = LEAF
            ni[0, MODE] = BUILD
            cnt[BUILD_BLOCKS] = nb
        for e in range(tid, nb, cuda.blockDim.x):
            lo = e * hchunk
            bt_node[e] = 0
            bt_lo[e] = lo
            bt_hi[e] = min(lo + hchunk, m)

    @cuda.jit
    def root_sums(pool, ni, nf, f0, max_depth, lr, l2, mcw, msl):  # pragma: no cover
        # the root's totals from its histogram of one feature (every row falls in one of its bins)
        sg = cuda.shared.array(256, float64)
        sh = cuda.shared.array(256, float64)
        for b in range(cuda.threadIdx.x, 256, cuda.blockDim.x):
            sg[b] = pool[0, f0, b, 0]
            sh[b] = pool[0, f0, b, 1]
        cuda.syncthreads()
        if cuda.threadIdx.x == 0:
            g = 0.0
            h = 0.0
            for b in range(256):
                g += sg[b]
                h += sh[b]
            m = ni[0, COUNT]
            nf[0, G] = g
            nf[0, H] = h
            nf[0, C] = float64(m)
            nf[0, VALUE] = leaf_value(g, h, lr, l2)
            ni[0, CAN] = may_split(0, max_depth, m, h, msl, mcw)

    @cuda.jit
    def zero_level(ni, first, n_slots, feats, pool):  # pragma: no cover
        # zero the slots whose histograms are built (the subtracted ones are overwritten)
        nfe = feats.shape[0]
        total = n_slots * nfe * 768
        for t in range(cuda.grid(1), total, cuda.gridsize(1)):
            k = t // (nfe * 768)
            if ni[first + k, MODE] == BUILD:
                rem = t - k * nfe * 768
                jf = rem // 768
                e = rem - jf * 768
                pool[k, feats[jf], e // 3, e % 3] = 0.0

    @cuda.jit(device=True)
    def add_pair(sgh, k, gi, hi, tmp, tf):  # pragma: no cover - compiled
        # (g, h) += (gi, hi) at sgh[k], a pair of float32 in one 64-bit word: one compare-and-swap
        # loop for both (a float32 atomic add on shared memory is a compare-and-swap loop of its own)
        old = sgh[k]
        while True:
            tmp[0] = old
            tf[0] = tf[0] + gi
            tf[1] = tf[1] + hi
            got = cuda.atomic.cas(sgh, k, old, tmp[0])
            if got == old:
                return
            old = got

    @(cuda.jit(launch_bounds=(threads, 6)) if not sim else cuda.jit)  # 6 blocks: at most 40 registers
    def build_level(binsf, n_cols, ghf, rows, bt_node, bt_lo, bt_hi, cnt, first, feats, pool):  # pragma: no cover
        # as the CUDA histogram twin: float32 shared-memory sums per block, float64 atomics across blocks.
        # A bin's gradient and hessian sums share a 64-bit word (one compare-and-swap loop adds both);
        # its count is a 32-bit integer (a native atomic increment). The bin matrix and gradient
        # pairs are read through flat views with unsigned offsets (no negative-index fix-ups), the
        # block's feature columns are held in registers.
        sgh = cuda.shared.array(pairs, uint64)
        sc = cuda.shared.array(pairs, uint32)
        sghf = sgh.view(float32_np)  # (g, h) of bin t at 2t, 2t + 1
        col = cuda.local.array(fg, uint32)
        bv = cuda.local.array(fg, uint32)
        tmp = cuda.local.array(1, uint64)
        tf = tmp.view(float32_np)
        blk = cuda.blockIdx.x
        if blk >= cnt[BUILD_BLOCKS]:
            return
        tid = cuda.threadIdx.x
        nthr = cuda.blockDim.x
        for t in range(tid, pairs, nthr):
            sgh[t] = uint64(0)  # both float32 halves 0.0
            sc[t] = uint32(0)
        f0 = cuda.blockIdx.y * fg
        nfg = min(fg, feats.shape[0] - f0)
        for ff in range(fg):
            col[ff] = uint32(feats[f0 + ff]) if ff < nfg else uint32(0)
        cuda.syncthreads()
        stride = uint64(n_cols)
        for i in range(bt_lo[blk] + tid, bt_hi[blk], nthr):
            r = uint64(rows[i])
            gi = ghf[r * uint64(2)]
            hi = ghf[r * uint64(2) + uint64(1)]
            base = r * stride
            for ff in range(fg):  # the row's bins first: their loads overlap (col[ff] is a feature even past nfg)
                bv[ff] = uint32(binsf[base + uint64(col[ff])])
            for ff in range(fg):
                if ff < nfg:
                    k = uint64(ff * 256) + uint64(bv[ff])
                    add_pair(sgh, k, gi, hi, tmp, tf)
                    cuda.atomic.add(sc, k, uint32(1))
        cuda.syncthreads()
        s = bt_node[blk] - first
        for t in range(tid, nfg * 256, nthr):
            c = sc[t]
            if c != 0:
                ff = t // 256
                b = t - ff * 256
                f = feats[f0 + ff]
                cuda.atomic.add(pool, (s, f, b, 0), float64(sghf[2 * t]))
                cuda.atomic.add(pool, (s, f, b, 1), float64(sghf[2 * t + 1]))
                cuda.atomic.add(pool, (s, f, b, 2), float64(c))

    @cuda.jit
    def subtract_level(ni, first, n_slots, feats, prev, pool):  # pragma: no cover
        # a SUBTRACT node's histogram: its parent's (previous level's pool) minus its built sibling's
        nfe = feats.shape[0]
        total = n_slots * nfe * 768
        pfirst = (first - 1) // 2
        for t in range(cuda.grid(1), total, cuda.gridsize(1)):
            k = t // (nfe * 768)
            h = first + k
            if ni[h, MODE] == SUBTRACT:
                rem = t - k * nfe * 768
                jf = rem // 768
                e = rem - jf * 768
                f = feats[jf]
                b = e // 3
                c = e - b * 3
                sib = h + 1 if h % 2 == 1 else h - 1
                p = (h - 1) // 2
                pool[k, f, b, c] = prev[p - pfirst, f, b, c] - pool[sib - first, f, b, c]

    @cuda.jit
    def split_level(pool, ni, nf, first, feats, n_bins, l2, mcw, msl, min_gain, t_gain, t_bin, t_ml, t_left):  # pragma: no cover
        # a block per (node, feature): the histogram staged in shared memory, scanned by the whole block
        # (kernels.gbdt_split.block_scan_factory: the CPU scan's sums in its order, the same split)
        sh = cuda.shared.array((1, 1, 256, 3), float64)
        pre = cuda.shared.array((2, 256, 3), float64)
        red_g = cuda.shared.array(nt_scan, float64)
        red_i = cuda.shared.array(nt_scan, int64)
        nfe = feats.shape[0]
        j = cuda.blockIdx.x
        k = j // nfe
        jf = j - k * nfe
        h = first + k
        if ni[h, CAN] == 0:
            if cuda.threadIdx.x == 0:
                t_gain[k, jf] = -inf
            return
        f = feats[jf]
        scan_into(pool, k, f, n_bins[f], nf[h, G], nf[h, H], nf[h, C], l2, mcw, msl, min_gain, sh, pre, red_g, red_i,
                  t_gain, t_bin, t_ml, t_left, k, jf)

    @cuda.jit
    def plan_level(ni, nf, first, n_slots, depth, max_depth, feats, t_gain, t_bin, t_ml, t_left, lr, l2, mcw, msl,
                   pchunk, hchunk, pt_node, pt_lo, pt_hi, left_off, right_off, bt_node, bt_lo, bt_hi, cnt):  # pragma: no cover
        # one block: the level's splits, children and block tables
        p_n = cuda.shared.array(MAX_LEVEL, int64)  # partition blocks of node k, then their first entry
        b_n = cuda.shared.array(MAX_LEVEL, int64)  # build blocks of node k's built child, then first entry
        tid = cuda.threadIdx.x
        bdim = cuda.blockDim.x
        nfe = feats.shape[0]
        for k in range(tid, n_slots, bdim):
            p_n[k] = 0
            b_n[k] = 0
            h = first + k
            if ni[h, STATE] == ABSENT or ni[h, CAN] == 0:
                continue
            best = -inf
            bj = -1
            for jf in range(nfe):
                if t_gain[k, jf] > best:
                    best = t_gain[k, jf]
                    bj = jf
            if bj < 0:
                continue
            ni[h, STATE] = SPLIT
            ni[h, FEAT] = feats[bj]
            ni[h, BIN] = t_bin[k, bj]
            ni[h, ML] = t_ml[k, bj]
            gl = t_left[k, bj, 0]
            hl = t_left[k, bj, 1]
            cl = t_left[k, bj, 2]
            nf[h, GAIN] = best
            nf[h, GL] = gl
            nf[h, HL] = hl
            nf[h, CL] = cl
            start = ni[h, START]
            count = ni[h, COUNT]
            nl = int64(cl)
            nr = count - nl
            gr = nf[h, G] - gl
            hr = nf[h, H] - hl
            lh = 2 * h + 1
            rh = lh + 1
            can_l = make_child(ni, nf, lh, start, nl, gl, hl, depth + 1, max_depth, lr, l2, mcw, msl)
            can_r = make_child(ni, nf, rh, start + nl, nr, gr, hr, depth + 1, max_depth, lr, l2, mcw, msl)
            p_n[k] = (count + pchunk - 1) // pchunk
            if can_l or can_r:
                small = lh if nl <= nr else rh
                large = rh if nl <= nr else lh
                can_large = can_r if nl <= nr else can_l
                ni[small, MODE] = BUILD
                ni[large, MODE] = SUBTRACT if can_large else NO_HIST
                b_n[k] = (ni[small, COUNT] + hchunk - 1) // hchunk
        cuda.syncthreads()
        if tid == 0:  # block counts -> first table entry of each node
            pa = 0
            ba = 0
            for k in range(n_slots):
                v = p_n[k]
                p_n[k] = pa
                pa += v
                v = b_n[k]
                b_n[k] = ba
                ba += v
            cnt[PART_BLOCKS] = pa
            cnt[BUILD_BLOCKS] = ba
        cuda.syncthreads()
        for k in range(n_slots):
            e0 = p_n[k]
            e1 = p_n[k + 1] if k + 1 < n_slots else cnt[PART_BLOCKS]
            if e1 > e0:
                h = first + k
                start = ni[h, START]
                end = start + ni[h, COUNT]
                base_r = start + int64(nf[h, CL])
                for e in range(e0 + tid, e1, bdim):
                    lo = start + (e - e0) * pchunk
                    pt_node[e] = h
                    pt_lo[e] = lo
                    pt_hi[e] = min(lo + pchunk, end)
                    left_off[e] = start  # + the left rows of the node's earlier blocks (offsets_level)
                    right_off[e] = base_r
            e0 = b_n[k]
            e1 = b_n[k + 1] if k + 1 < n_slots else cnt[BUILD_BLOCKS]
            if e1 > e0:
                c = 2 * (first + k) + 1
                if ni[c, MODE] != BUILD:
                    c += 1
                start = ni[c, START]
                end = start + ni[c, COUNT]
                for e in range(e0 + tid, e1, bdim):
                    lo = start + (e - e0) * hchunk
                    bt_node[e] = c
                    bt_lo[e] = lo
                    bt_hi[e] = min(lo + hchunk, end)

    @cuda.jit
    def count_level(bins_tf, n_rows, rows, pt_node, pt_lo, pt_hi, cnt, ni, n_left):  # pragma: no cover
        # bins_tf: the column-major bin matrix, flat (feature f's bins start at f * n_rows)
        sh = cuda.shared.array(threads, int64)
        t = cuda.blockIdx.x
        if t >= cnt[PART_BLOCKS]:
            return
        tid = cuda.threadIdx.x
        h = pt_node[t]
        colbase = uint64(ni[h, FEAT]) * uint64(n_rows)
        sb = ni[h, BIN]
        ml = ni[h, ML]
        c = 0
        for i in range(pt_lo[t] + tid, pt_hi[t], threads):
            if goes_left(bins_tf[colbase + uint64(rows[i])], sb, ml):
                c += 1
        sh[tid] = c
        cuda.syncthreads()
        s = threads // 2
        while s > 0:
            if tid < s:
                sh[tid] += sh[tid + s]
            cuda.syncthreads()
            s //= 2
        if tid == 0:
            n_left[t] = sh[0]

    @cuda.jit
    def offsets_level(pt_node, pt_lo, pt_hi, cnt, n_left, left_off, right_off):  # pragma: no cover
        # one block: within each node, a block's left (right) rows go after the node's earlier blocks'
        s_node = cuda.shared.array(TILE, int64)
        s_l = cuda.shared.array(TILE, int64)
        s_r = cuda.shared.array(TILE, int64)
        tid = cuda.threadIdx.x
        total = cnt[PART_BLOCKS]
        acc_l = 0
        acc_r = 0
        cur = -1
        for base in range(0, total, TILE):
            n = min(TILE, total - base)
            for i in range(tid, n, cuda.blockDim.x):
                t = base + i
                s_node[i] = pt_node[t]
                s_l[i] = n_left[t]
                s_r[i] = (pt_hi[t] - pt_lo[t]) - n_left[t]
            cuda.syncthreads()
            if tid == 0:
                for i in range(n):
                    if s_node[i] != cur:
                        cur = s_node[i]
                        acc_l = 0
                        acc_r = 0
                    vl = s_l[i]
                    vr = s_r[i]
                    s_l[i] = acc_l
                    s_r[i] = acc_r
                    acc_l += vl
                    acc_r += vr
            cuda.syncthreads()
            for i in range(tid, n, cuda.blockDim.x):
                left_off[base + i] += s_l[i]
                right_off[base + i] += s_r[i]
            cuda.syncthreads()

    @cuda.jit
    def scatter_level(bins_tf, n_rows, rows, out_rows, pt_node, pt_lo, pt_hi, cnt, ni, left_off, right_off):  # pragma: no cover
        # the CUDA partition twin's scatter (kernels.gbdt_partition.device_functions) on the planned table
        sh = cuda.shared.array(threads, int64)
        t = cuda.blockIdx.x
        if t >= cnt[PART_BLOCKS]:
            return
        h = pt_node[t]
        scatter_block(bins_tf, uint64(ni[h, FEAT]) * uint64(n_rows), ni[h, BIN], ni[h, ML], rows, out_rows,
                      pt_lo[t], pt_hi[t], left_off[t], right_off[t], sh)

    @cuda.jit
    def add_tree(bins, ni, nf, raw):  # pragma: no cover
        # raw[i] += the value of the leaf row i falls in (a walk down the heap on its bins)
        for i in range(cuda.grid(1), bins.shape[0], cuda.gridsize(1)):
            h = 0
            while ni[h, STATE] == SPLIT:
                if goes_left(bins[i, ni[h, FEAT]], ni[h, BIN], ni[h, ML]):
                    h = 2 * h + 1
                else:
                    h = 2 * h + 2
            raw[i] += nf[h, VALUE]

    return SimpleNamespace(
        root_plan=root_plan, root_sums=root_sums, zero_level=zero_level, build_level=build_level,
        subtract_level=subtract_level, split_level=split_level, plan_level=plan_level, count_level=count_level,
        offsets_level=offsets_level, scatter_level=scatter_level, add_tree=add_tree,
    )

