"""Named case tables for the kernel tests (architecture rule 11).

Every case has a ``name`` that becomes its pytest id, so a failure reads as
``test_forward[c17_k15_q32-im2col-avx512]``. The tables hit the edges of the
kernels: channel counts 1, 2, 3, 7, 8, 15, 16, 17; output widths Q around the
SIMD widths (8 floats for AVX2, 16 for AVX-512: Q = 7, 8, 9, 15, 16, 17, 31,
32, 33); strides 1, 2, 3 and asymmetric; every padding form; dilation;
grouped and depthwise convolutions; 1x1 and non-square kernels; batch 1 and 3.
Tensors are small so that the whole (case x algo x ISA x pass) matrix runs in
seconds.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np
from hypothesis import strategies as st

from fastconv._ref_shapes import _pair
from fastconv._shapes import ConvShape
from fastconv.reference import IntPair


def rng_for(*key) -> np.random.Generator:
    """A generator seeded from the key (str hashes are randomised per process)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


@dataclass(frozen=True)
class ConvCase(ConvShape):
    """A conv test case: a :class:`~fastconv._shapes.ConvShape` (pairs and
    string paddings allowed) and whether the convolution has a bias."""

    bias: bool = True


# fmt: off
CONV_CASES = [
    # Channel counts x output widths around the SIMD widths (3x3, padding 1: Q = W).
    ConvCase("c1_k1_q7",          N=1, C=1,  H=5,  W=7,  K=1,  R=3, S=3, padding=1),
    ConvCase("c2_k3_q8",          N=3, C=2,  H=6,  W=8,  K=3,  R=3, S=3, padding=1),
    ConvCase("c3_k2_q9_nopad",    N=1, C=3,  H=6,  W=11, K=2,  R=3, S=3),
    ConvCase("c7_k8_q15",         N=3, C=7,  H=5,  W=15, K=8,  R=3, S=3, padding=1),
    ConvCase("c8_k7_q16",         N=1, C=8,  H=4,  W=16, K=7,  R=3, S=3, padding=1),
    ConvCase("c15_k16_q17",       N=1, C=15, H=3,  W=17, K=16, R=3, S=3, padding=1),
    ConvCase("c16_k17_q31",       N=1, C=16, H=3,  W=31, K=17, R=3, S=3, padding=1),
    ConvCase("c17_k15_q32",       N=3, C=17, H=3,  W=32, K=15, R=3, S=3, padding=1),
    ConvCase("c16_k16_q33",       N=1, C=16, H=3,  W=33, K=16, R=3, S=3, padding=1,
             bias=False),
    ConvCase("c1_k16_q33_nopad",  N=1, C=1,  H=4,  W=35, K=16, R=3, S=3),
    # Strides.
    ConvCase("s2_p1",             N=1, C=3,  H=9,  W=17, K=8,  R=3, S=3, stride=2, padding=1),
    ConvCase("s3_5x5_p2",         N=3, C=2,  H=11, W=20, K=4,  R=5, S=5, stride=3, padding=2),
    ConvCase("s1x2_p1",           N=1, C=3,  H=7,  W=16, K=5,  R=3, S=3, stride=(1, 2),
             padding=1),
    ConvCase("s2x1_p1",           N=1, C=2,  H=8,  W=9,  K=3,  R=3, S=3, stride=(2, 1),
             padding=1),
    ConvCase("s3_k2_gaps",        N=3, C=2,  H=8,  W=10, K=3,  R=2, S=2, stride=3),
    ConvCase("s2_q16",            N=1, C=8,  H=5,  W=33, K=8,  R=3, S=3, stride=2, padding=1),
    # Paddings.
    ConvCase("p2_3x3",            N=1, C=3,  H=4,  W=6,  K=4,  R=3, S=3, padding=2),
    ConvCase("p0x2_3x5",          N=1, C=2,  H=6,  W=7,  K=3,  R=3, S=5, padding=(0, 2)),
    ConvCase("p2x1_5x3",          N=3, C=3,  H=5,  W=9,  K=2,  R=5, S=3, padding=(2, 1)),
    ConvCase("same_3x3",          N=1, C=3,  H=7,  W=9,  K=4,  R=3, S=3, padding="same"),
    ConvCase("same_4x4_even",     N=1, C=2,  H=6,  W=8,  K=3,  R=4, S=4, padding="same"),
    ConvCase("same_2x2_even",     N=3, C=2,  H=5,  W=7,  K=2,  R=2, S=2, padding="same"),
    ConvCase("same_3x3_s2_odd",   N=1, C=3,  H=9,  W=10, K=4,  R=3, S=3, stride=2,
             padding="same"),
    ConvCase("same_4x4_s3",       N=1, C=2,  H=10, W=11, K=3,  R=4, S=4, stride=3,
             padding="same"),
    ConvCase("same_3x3_d2",       N=1, C=2,  H=7,  W=8,  K=3,  R=3, S=3, dilation=2,
             padding="same"),
    ConvCase("valid_3x3",         N=3, C=3,  H=6,  W=9,  K=4,  R=3, S=3, padding="valid"),
    # Dilation.
    ConvCase("d2_p2",             N=1, C=3,  H=7,  W=9,  K=4,  R=3, S=3, dilation=2, padding=2),
    ConvCase("d2x1_p2x1",         N=1, C=2,  H=8,  W=9,  K=3,  R=3, S=3, dilation=(2, 1),
             padding=(2, 1)),
    ConvCase("d2_s2",             N=3, C=2,  H=9,  W=11, K=3,  R=3, S=3, dilation=2, stride=2,
             padding=1),
    # Groups and depthwise.
    ConvCase("g2",                N=1, C=4,  H=5,  W=9,  K=6,  R=3, S=3, padding=1, groups=2),
    ConvCase("g2_c16_k8",         N=3, C=16, H=4,  W=8,  K=8,  R=3, S=3, padding=1, groups=2),
    ConvCase("g3_kg1",            N=1, C=15, H=4,  W=7,  K=3,  R=3, S=3, padding=1, groups=3),
    ConvCase("dw_c8",             N=1, C=8,  H=5,  W=17, K=8,  R=3, S=3, padding=1, groups=8),
    ConvCase("dw_c7_k14",         N=3, C=7,  H=5,  W=9,  K=14, R=3, S=3, padding=1, groups=7),
    ConvCase("dw_c16_s2",         N=1, C=16, H=7,  W=16, K=16, R=3, S=3, stride=2, padding=1,
             groups=16),
    ConvCase("dw_c17_5x5_same",   N=1, C=17, H=6,  W=9,  K=17, R=5, S=5, padding="same",
             groups=17),
    # 1x1 kernels.
    ConvCase("1x1_c17_k16",       N=3, C=17, H=3,  W=9,  K=16, R=1, S=1),
    ConvCase("1x1_s2",            N=1, C=8,  H=7,  W=17, K=4,  R=1, S=1, stride=2),
    ConvCase("1x1_p1",            N=1, C=3,  H=3,  W=5,  K=2,  R=1, S=1, padding=1),
    # GEMM blocking of the implicit algorithm: more taps than one K block
    # (C/G*R*S > 512), more output channels than one K block of backward-
    # input's depth, a weight-gradient chunk deeper than one K block (2
    # images x 324 pixels), pixel panels straddling images (P*Q = 4).
    ConvCase("kblocks_crs576",    N=2, C=64, H=5,  W=6,  K=20, R=3, S=3, padding=1),
    ConvCase("bi_depth_k600_1x1", N=2, C=3,  H=3,  W=4,  K=600, R=1, S=1),
    ConvCase("chunk_depth_n16",   N=16, C=2, H=18, W=20, K=5,  R=3, S=3),
    ConvCase("straddle_pq4_n5",   N=5, C=3,  H=3,  W=3,  K=9,  R=2, S=2),
    # Direct backward-weight (conv2d_direct.cpp): K = 13 and 144 taps leave
    # ragged filter and tap blocks; shifted copies of one image exceed its
    # sub-chunk budget, so chunks of two images run as two sub-chunks.
    ConvCase("dot_subchunks_n10", N=10, C=16, H=32, W=32, K=13, R=3, S=3, padding=1),
    # Non-square and boundary shapes.
    ConvCase("1x3",               N=1, C=3,  H=4,  W=9,  K=4,  R=1, S=3, padding=(0, 1)),
    ConvCase("3x1_s2",            N=1, C=2,  H=9,  W=6,  K=3,  R=3, S=1, stride=2),
    ConvCase("2x5_p1x2",          N=3, C=3,  H=6,  W=8,  K=5,  R=2, S=5, padding=(1, 2)),
    ConvCase("5x5_p2_lenet",      N=1, C=3,  H=8,  W=8,  K=8,  R=5, S=5, padding=2),
    ConvCase("kernel_eq_input",   N=3, C=2,  H=7,  W=7,  K=3,  R=7, S=7),
    ConvCase("kernel_gt_input_p", N=1, C=2,  H=2,  W=2,  K=3,  R=3, S=3, padding=1),
    ConvCase("h1w1",              N=3, C=3,  H=1,  W=1,  K=2,  R=1, S=1),
]
# fmt: on

# Kernel taps that read only padding for *every* output position (the tap's
# offset exceeds the output size: tiny input, large kernel and padding). Once
# made im2col/col2im write outside their buffers (heap corruption), so
# test_conv2d runs them in a child process (@pytest.mark.isolated).
# fmt: off
PADDING_ONLY_TAP_CASES = [
    ConvCase("pad_only_5x5_on_1x1_c2", N=1, C=2, H=1, W=1, K=2, R=5, S=5, padding=2),
    ConvCase("pad_only_5x5_on_1x1_k4", N=2, C=3, H=1, W=1, K=4, R=5, S=5, padding=2),
    ConvCase("pad_only_1x5_on_2x1",    N=1, C=3, H=2, W=1, K=4, R=1, S=5, padding=(0, 2)),
    ConvCase("pad_only_same_d2",       N=1, C=3, H=1, W=1, K=1, R=1, S=3, padding="same",
             dilation=(1, 2)),
    ConvCase("pad_only_7x7_p3_s2",     N=1, C=4, H=2, W=2, K=5, R=7, S=7, padding=3, stride=2),
    ConvCase("pad_only_g2",            N=1, C=4, H=1, W=2, K=8, R=5, S=5, padding=2, groups=2),
]
# fmt: on


@dataclass(frozen=True)
class PoolCase:
    name: str
    N: int
    C: int
    H: int
    W: int
    kernel_size: IntPair
    stride: IntPair | None = None
    padding: IntPair = 0
    dilation: IntPair = 1  # max pooling only
    ceil_mode: bool = False
    count_include_pad: bool = True  # average pooling only
    divisor_override: int | None = None  # average pooling only

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)

    @property
    def max_kwargs(self) -> dict:
        names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
        return {name: getattr(self, name) for name in names}

    @property
    def avg_kwargs(self) -> dict:
        names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
        return {name: getattr(self, name) for name in (*names, "divisor_override")}


# fmt: off
MAX_POOL_CASES = [
    PoolCase("k2s2_even",        N=1, C=3,  H=8,  W=16, kernel_size=2),
    PoolCase("k2s2_odd",         N=3, C=2,  H=11, W=11, kernel_size=2),
    PoolCase("k2s2_odd_ceil",    N=1, C=2,  H=11, W=13, kernel_size=2, ceil_mode=True),
    # 2x2/2 rows of 16 windows and more (the AVX-512 row kernel's tails).
    PoolCase("k2s2_q19",         N=1, C=2,  H=6,  W=38, kernel_size=2),
    PoolCase("k2s2_q17_odd",     N=1, C=2,  H=5,  W=35, kernel_size=2),
    PoolCase("k2s2_q33_ceil",    N=1, C=2,  H=5,  W=65, kernel_size=2, ceil_mode=True),
    PoolCase("k3s2_alexnet",     N=1, C=3,  H=13, W=13, kernel_size=3, stride=2),
    PoolCase("k3s2_alexnet_27",  N=1, C=2,  H=27, W=27, kernel_size=3, stride=2),
    PoolCase("k3s2_ceil",        N=3, C=2,  H=12, W=14, kernel_size=3, stride=2, ceil_mode=True),
    PoolCase("k3s2_p1_resnet",   N=1, C=3,  H=9,  W=16, kernel_size=3, stride=2, padding=1),
    PoolCase("k3s2_p1_ceil",     N=1, C=2,  H=10, W=11, kernel_size=3, stride=2, padding=1,
             ceil_mode=True),
    PoolCase("k1s1",             N=1, C=2,  H=3,  W=9,  kernel_size=1, stride=1),
    PoolCase("k1s2",             N=1, C=2,  H=5,  W=9,  kernel_size=1, stride=2),
    PoolCase("k3s1_p1",          N=1, C=7,  H=5,  W=17, kernel_size=3, stride=1, padding=1),
    PoolCase("k2s1_q32",         N=1, C=2,  H=3,  W=33, kernel_size=2, stride=1),
    PoolCase("k2s1_q16",         N=1, C=17, H=2,  W=17, kernel_size=2, stride=1),
    PoolCase("k2_d2_p1",         N=1, C=2,  H=7,  W=9,  kernel_size=2, stride=1, padding=1,
             dilation=2),
    PoolCase("k3_d2_p1_ceil",    N=3, C=2,  H=9,  W=10, kernel_size=3, stride=2, padding=1,
             dilation=2, ceil_mode=True),
    PoolCase("k3_d2x1",          N=1, C=2,  H=9,  W=8,  kernel_size=3, stride=1,
             dilation=(2, 1)),
    PoolCase("k2x3_s1x2_p1",     N=1, C=3,  H=6,  W=11, kernel_size=(2, 3), stride=(1, 2),
             padding=1),
    PoolCase("k3s3_ceil",        N=1, C=2,  H=10, W=10, kernel_size=3, ceil_mode=True),
    PoolCase("h1_k1x3",          N=1, C=2,  H=1,  W=9,  kernel_size=(1, 3), stride=(1, 2)),
    # Dilation and padding leave a window with no in-bounds position: -inf and
    # PyTorch's out-of-plane start index.
    PoolCase("empty_window_d2",  N=1, C=1,  H=1,  W=3,  kernel_size=2, stride=1, padding=1,
             dilation=2),
]

AVG_POOL_CASES = [
    PoolCase("k2s2_even",        N=1, C=3,  H=8,  W=16, kernel_size=2),
    PoolCase("k2s2_odd",         N=3, C=2,  H=11, W=11, kernel_size=2),
    PoolCase("k2s2_odd_ceil",    N=1, C=2,  H=11, W=13, kernel_size=2, ceil_mode=True),
    PoolCase("k3s2_alexnet",     N=1, C=3,  H=13, W=13, kernel_size=3, stride=2),
    PoolCase("k3s2_ceil",        N=3, C=2,  H=12, W=14, kernel_size=3, stride=2, ceil_mode=True),
    PoolCase("k3s2_p1",          N=1, C=3,  H=9,  W=16, kernel_size=3, stride=2, padding=1),
    PoolCase("k3s2_p1_nopad",    N=1, C=3,  H=9,  W=16, kernel_size=3, stride=2, padding=1,
             count_include_pad=False),
    PoolCase("k3s2_p1_ceil",     N=1, C=2,  H=10, W=11, kernel_size=3, stride=2, padding=1,
             ceil_mode=True),
    PoolCase("k3s2_p1_ceil_np",  N=1, C=2,  H=10, W=11, kernel_size=3, stride=2, padding=1,
             ceil_mode=True, count_include_pad=False),
    PoolCase("k1s1",             N=1, C=2,  H=3,  W=9,  kernel_size=1, stride=1),
    PoolCase("k1s2",             N=1, C=2,  H=5,  W=9,  kernel_size=1, stride=2),
    PoolCase("k3s1_p1",          N=1, C=7,  H=5,  W=17, kernel_size=3, stride=1, padding=1),
    PoolCase("k3s1_p1_nopad",    N=1, C=7,  H=5,  W=17, kernel_size=3, stride=1, padding=1,
             count_include_pad=False),
    PoolCase("k2s1_q32",         N=1, C=2,  H=3,  W=33, kernel_size=2, stride=1),
    PoolCase("k2s1_q16",         N=1, C=17, H=2,  W=17, kernel_size=2, stride=1),
    PoolCase("k2x3_s1x2_p1",     N=1, C=3,  H=6,  W=11, kernel_size=(2, 3), stride=(1, 2),
             padding=1),
    PoolCase("k3s3_ceil",        N=1, C=2,  H=10, W=10, kernel_size=3, ceil_mode=True),
    PoolCase("k3s3_ceil_nopad",  N=1, C=2,  H=10, W=10, kernel_size=3, ceil_mode=True,
             count_include_pad=False),
    PoolCase("div5",             N=1, C=2,  H=7,  W=9,  kernel_size=3, stride=2, padding=1,
             divisor_override=5),
    PoolCase("div_neg3_ceil",    N=1, C=2,  H=7,  W=8,  kernel_size=2, stride=2, padding=1,
             ceil_mode=True, divisor_override=-3),
    PoolCase("div1_k3s1",        N=3, C=2,  H=5,  W=6,  kernel_size=3, stride=1,
             divisor_override=1),
    PoolCase("h1_k1x3",          N=1, C=2,  H=1,  W=9,  kernel_size=(1, 3), stride=(1, 2)),
]
# fmt: on


def ids(cases) -> list:
    return [c.name for c in cases]


# ---------------------------------------------------------------------------
# Random problems (hypothesis strategies) over every parameter of the ops
# ---------------------------------------------------------------------------
# Used by test_hostile.py's randomized tests. Sizes mix tiny values (windows
# hanging over every edge, taps that only read padding) with values around
# the SIMD and GEMM tile widths (8, 16 floats; 14 x 32 microkernel tiles).


def _one_or_pair(lo: int, hi: int):
    return st.one_of(st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi)))


# Batch sizes: N = 0 about one example in ten (st.integers would favour it).
_BATCH = st.sampled_from([1, 2, 3] * 3 + [0])


def _min_extent(k: int, dilation: int, pad_total: int) -> int:
    """Smallest input length with at least one output position."""
    return max(1, dilation * (k - 1) + 1 - pad_total)


@st.composite
def conv_problems(draw):
    """(ConvCase, seed): any groups (depthwise included), channels, kernel,
    stride, padding form, dilation, batch (0 included) and bias.

    Three regimes: "tiny" (windows hang over every edge, taps read only
    padding), "wide" (output rows past the 16- and 32-float tiles) and "deep"
    (channel counts past the GEMM's 14-row tiles). An input too small for its
    dilated kernel is grown to the smallest valid size instead of rejected.
    """
    regime = draw(st.sampled_from(["tiny", "wide", "deep"]))
    G = draw(st.one_of(st.just(1), st.integers(1, 4)))
    depthwise = G > 1 and draw(st.booleans())
    big = regime == "deep"
    Cg = 1 if depthwise else draw(st.integers(1, 17 if big else 4))
    Kg = draw(st.integers(1, 17 if big else 4))
    R, S = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = draw(_one_or_pair(1, 3))
    dilation = draw(_one_or_pair(1, 3))
    padding = draw(st.one_of(st.sampled_from(["same", "valid"]), _one_or_pair(0, 3)))
    N = draw(_BATCH)
    hi = {"tiny": (3, 3), "wide": (10, 40), "deep": (6, 20)}[regime]
    H, W = draw(st.integers(1, hi[0])), draw(st.integers(1, hi[1]))
    if padding != "same":
        ph, pw = (0, 0) if padding == "valid" else _pair(padding, "padding", 0)
        dh, dw = _pair(dilation, "dilation", 1)
        H, W = max(H, _min_extent(R, dh, 2 * ph)), max(W, _min_extent(S, dw, 2 * pw))
    case = ConvCase(
        "hyp",
        N=N,
        C=Cg * G,
        H=H,
        W=W,
        K=Kg * G,
        R=R,
        S=S,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=G,
        bias=draw(st.booleans()),
    )
    P, Q = case.out_hw
    assert P >= 1 and Q >= 1, case
    return case, draw(st.integers(0, 2**32 - 1))


@st.composite
def pool_problems(draw):
    """(PoolCase, input kind, seed): any kernel, stride (or the default), padding
    up to half the kernel, dilation, ceil_mode, divisor rules, batch (0 included)."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    kernel = draw(st.sampled_from([(kh, kw), kh]))
    kpair = (kernel, kernel) if isinstance(kernel, int) else kernel
    stride = draw(st.one_of(st.none(), _one_or_pair(1, 4)))
    padding = draw(
        st.one_of(
            st.integers(0, min(kpair) // 2),
            st.tuples(st.integers(0, kpair[0] // 2), st.integers(0, kpair[1] // 2)),
        )
    )
    dilation = draw(_one_or_pair(1, 3))
    divisor = draw(st.one_of(st.none(), st.integers(-5, 9).filter(lambda d: d != 0)))
    case = PoolCase(
        "hyp",
        N=draw(_BATCH),
        C=draw(st.integers(1, 5)),
        H=draw(st.one_of(st.integers(1, 3), st.integers(1, 12))),
        W=draw(st.one_of(st.integers(1, 3), st.integers(1, 40))),
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=draw(st.booleans()),
        count_include_pad=draw(st.booleans()),
        divisor_override=divisor,
    )
    (ph, pw), (dh, dw) = _pair(padding, "padding", 0), _pair(dilation, "dilation", 1)
    case = replace(
        case,
        H=max(case.H, _min_extent(kpair[0], dh, 2 * ph)),
        W=max(case.W, _min_extent(kpair[1], dw, 2 * pw)),
    )
    kind = draw(st.sampled_from(["normal", "ties", "nans", "neginf", "mixed"]))
    return case, kind, draw(st.integers(0, 2**32 - 1))


def pool_input(shape, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Random float32 data: plain, many ties, NaNs, mostly -inf, or all of them."""
    if kind == "normal":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "ties":
        return rng.integers(0, 3, shape).astype(np.float32)
    x = rng.standard_normal(shape).astype(np.float32)
    u = rng.random(shape)
    if kind == "nans":
        x[u < 0.3] = np.nan
    elif kind == "neginf":
        x[u < 0.9] = -np.inf
    elif kind == "mixed":
        x = rng.integers(-1, 2, shape).astype(np.float32)
        x[u < 0.1] = np.nan
        x[(u >= 0.1) & (u < 0.25)] = -np.inf
        x[(u >= 0.25) & (u < 0.3)] = np.inf
    else:
        raise ValueError(kind)
    return x
