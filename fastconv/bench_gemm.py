"""``fastconv bench --suite gemm``: fastconv's GEMM against ``numpy.matmul``.

Both run side by side in one process, interleaved (see
:func:`fastconv._timing.time_interleaved`), at 1 and 2 threads (OpenBLAS limited
with threadpoolctl), on square sizes and on the GEMMs that the anchor layers
produce. The FP32 FMA peak of the active ISA is measured in the same run by a
small probe (``_core.fma_peak_gflops``), and the targets of the GEMM issue are
checked as ratios:

* squares >= 512: fastconv at least 0.95x numpy, at 1 and 2 threads;
* the conv and dense shapes: at least 1.0x numpy;
* 2048^3 at 2 threads: at least 85% of the measured peak.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import fastconv
from fastconv import _core
from fastconv._timing import geometric_mean, limit_blas_threads, time_interleaved


@dataclass(frozen=True)
class GemmShape:
    """C (M, N) = op(A) (M, K) @ op(B) (K, N); trans_b as in a linear layer."""

    name: str
    M: int
    N: int
    K: int
    trans_b: bool = False
    kind: str = "layer"  # "square" or "layer"

    @property
    def flops(self) -> int:
        return 2 * self.M * self.N * self.K


# The GEMMs behind the anchor layers (im2col: M = K/groups filters,
# N = P*Q output positions, K = C/groups*R*S; backward-weight: M = filters,
# N = C*R*S, K = images * P*Q; dense: M = batch, N = out, K = in).
SHAPES: tuple[GemmShape, ...] = (
    GemmShape("square.256", 256, 256, 256, kind="square"),
    GemmShape("square.512", 512, 512, 512, kind="square"),
    GemmShape("square.1024", 1024, 1024, 1024, kind="square"),
    GemmShape("square.2048", 2048, 2048, 2048, kind="square"),
    GemmShape("mnist.conv2.fwd.image", 64, 121, 288),
    GemmShape("mnist.conv2.fwd.batch", 64, 121 * 128, 288),
    GemmShape("mnist.conv2.bwd_weight", 64, 288, 121 * 128, trans_b=True),
    GemmShape("alexnet.conv2.fwd", 256, 729, 2400),
    GemmShape("alexnet.conv2.bwd_weight", 256, 2400, 729 * 16, trans_b=True),
    GemmShape("alexnet.conv3.fwd", 384, 169, 2304),
    GemmShape("alexnet.conv3.bwd_weight", 384, 2304, 169 * 16, trans_b=True),
    GemmShape("mnist.dense1", 128, 64, 576, trans_b=True),
    GemmShape("alexnet.fc6", 16, 4096, 9216, trans_b=True),
)


def operands(s: GemmShape) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((s.M, s.K), dtype=np.float32)
    b = rng.standard_normal((s.N, s.K) if s.trans_b else (s.K, s.N), dtype=np.float32)
    return a, b


def measure(
    shapes: Sequence[GemmShape], threads: int, repeats: int, max_time: float
) -> list[dict[str, Any]]:
    """Median seconds of fastconv and numpy for each shape at `threads` threads."""
    rows = []
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        with limit_blas_threads(threads) as blas:
            for s in shapes:
                a, b = operands(s)
                # One output per contender, reused: a fresh 16 MB array costs
                # ~6 ms of page faults here, more than the 2048^3 gap we measure.
                out = np.zeros((s.M, s.N), np.float32)
                out_fc = np.zeros((s.M, s.N), np.float32)
                bt = b.T if s.trans_b else b  # a view: BLAS gets the transpose flag

                def fc_call(a=a, b=b, s=s, out_fc=out_fc) -> object:
                    return _core.sgemm(a, b, trans_b=s.trans_b, out=out_fc)

                def np_call(a=a, bt=bt, out=out) -> object:
                    return np.matmul(a, bt, out=out)

                tf, tn = time_interleaved(
                    [fc_call, np_call], repeats=repeats, max_time=max_time, min_repeats=3
                )
                rows.append(
                    {
                        "shape": s,
                        "threads": threads,
                        "fastconv_s": tf.median,
                        "numpy_s": tn.median,
                        "blas": blas,
                    }
                )
    finally:
        fastconv.set_num_threads(before)
    return rows


def _targets(rows: list[dict[str, Any]], peak: dict[int, float]) -> list[tuple[str, bool, str]]:
    out = []
    for r in rows:
        s, ratio = r["shape"], r["numpy_s"] / r["fastconv_s"]
        if s.kind == "square" and s.M >= 512:
            out.append(
                (f"{s.name} @{r['threads']}t >= 0.95x numpy", ratio >= 0.95, f"{ratio:.2f}x")
            )
        elif s.kind == "layer":
            out.append((f"{s.name} @{r['threads']}t >= 1.0x numpy", ratio >= 1.0, f"{ratio:.2f}x"))
        if s.name == "square.2048" and r["threads"] == 2:
            share = s.flops / r["fastconv_s"] / 1e9 / peak[2]
            out.append(("square.2048 @2t >= 85% of peak", share >= 0.85, f"{100 * share:.0f}%"))
    return out


def run(args: argparse.Namespace) -> int:
    """Run the GEMM suite; print the table and the target checks."""
    info = fastconv.show_config()
    g = info["gemm"]
    threads_list = sorted({1, 2} if args.threads is None else {args.threads})
    repeats = args.repeats or (5 if args.quick else 9)
    max_time = 1.0 if args.quick else 3.0
    out = sys.stdout
    print(
        f"fastconv {info['version']}  ISA {info['isa_active']}  GEMM {g['ukernel']} "
        f"(MC {g['mc']}, KC {g['kc']}, NC {g['nc']})",
        file=out,
    )
    peak = {t: _core.fma_peak_gflops(t) for t in threads_list}
    peak_text = ", ".join(f"{p:.1f} GFLOP/s at {t} thread{'s' * (t > 1)}" for t, p in peak.items())
    print(f"FP32 FMA peak (probe, {info['isa_active']}): {peak_text}", file=out)
    rows = []
    for t in threads_list:
        rows += measure(SHAPES, t, repeats, max_time)
    print(f"numpy: {np.__version__}, BLAS {rows[0]['blas']}", file=out)
    print(
        f"{'shape':<26} {'MxNxK':>18} {'thr':>3} {'fastconv ms':>11} {'GFLOP/s':>8} "
        f"{'% peak':>6} {'numpy ms':>9} {'GFLOP/s':>8} {'ratio':>6}",
        file=out,
    )
    for r in rows:
        s = r["shape"]
        gf, gn = s.flops / r["fastconv_s"] / 1e9, s.flops / r["numpy_s"] / 1e9
        dims = f"{s.M}x{s.N}x{s.K}{'ᵀ' if s.trans_b else ''}"
        print(
            f"{s.name:<26} {dims:>18} {r['threads']:>3} {1e3 * r['fastconv_s']:>11.3f} "
            f"{gf:>8.1f} {100 * gf / peak[r['threads']]:>5.0f}% {1e3 * r['numpy_s']:>9.3f} "
            f"{gn:>8.1f} {r['numpy_s'] / r['fastconv_s']:>5.2f}x",
            file=out,
        )
    print("ratio = numpy time / fastconv time (> 1: fastconv faster); ᵀ: B transposed", file=out)
    checks = _targets(rows, peak)
    if checks:
        print("targets:", file=out)
        for name, ok, value in checks:
            print(f"  [{'met' if ok else 'MISSED'}] {name}: {value}", file=out)
    ratios = [r["numpy_s"] / r["fastconv_s"] for r in rows]
    print(f"geometric mean ratio {geometric_mean(ratios):.2f}x", file=out)
    return 0
