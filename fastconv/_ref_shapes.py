"""Shapes of the reference (:mod:`fastconv.reference`): output sizes, padding, records.

This is the one Python statement of each shape rule: conv output size, pool
output size (with ``ceil_mode``) and ``"same"`` padding. Every Python shape in
fastconv is computed here: the reference ops (their validated geometry is a
:class:`ConvShape` or a :class:`PoolShape`), the named layers of
``fastconv._shapes`` (the benchmarks) and the test case tables. The C++
kernels state the same rules once more, for themselves, in
``cpp/src/shapes.cpp``. Plain Python integers.

Shape letters: N batch, C input channels, H,W input size, K output channels,
R,S kernel size, P,Q output size, G groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Union

import numpy as np

__all__ = [
    "ConvPadding",
    "ConvShape",
    "IntPair",
    "PoolShape",
    "conv2d_output_hw",
    "conv2d_output_size",
    "conv_transpose2d_output_hw",
    "pool2d_output_hw",
    "pool2d_output_size",
    "resolve_conv_padding",
]

# Python 3.9 compatible aliases (evaluated at runtime, unlike the annotations).
IntPair = Union[int, tuple[int, int], Sequence[int]]
ConvPadding = Union[int, tuple[int, int], Sequence[int], Literal["same", "valid"]]


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _pair(value: IntPair, name: str, minimum: int) -> tuple[int, int]:
    """Parse an int or an ``(h, w)`` pair of ints into a tuple of Python ints."""
    if _is_int(value):
        pair = (int(value), int(value))  # type: ignore[arg-type]
    else:
        try:
            items = tuple(value)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
        if len(items) != 2 or not all(_is_int(v) for v in items):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        pair = (int(items[0]), int(items[1]))
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def _reach(out: int, k: int, stride: int, dilation: int) -> int:
    """Padded input length that ``out`` windows of a dilated kernel span, first tap
    of the first window to last tap of the last: ``(out-1)*stride + dilation*(k-1) + 1``."""
    return (out - 1) * stride + dilation * (k - 1) + 1


def conv2d_output_size(n: int, k: int, stride: int, pad_total: int, dilation: int) -> int:
    """Output length of a convolution along one dimension.

    Parameters
    ----------
    n : int
        Input length (H or W).
    k : int
        Kernel length (R or S).
    stride, dilation : int
        Stride and dilation along this dimension (>= 1).
    pad_total : int
        Total padding along this dimension (before + after).

    Returns
    -------
    int
        ``floor((n + pad_total - dilation*(k-1) - 1) / stride) + 1``, computed in
        exact integer arithmetic (Python ints, floor division). It may be
        ``<= 0``; callers treat that as an error.
    """
    n, k, stride, pad_total, dilation = (int(v) for v in (n, k, stride, pad_total, dilation))
    return (n + pad_total - dilation * (k - 1) - 1) // stride + 1


def pool2d_output_size(
    n: int, k: int, stride: int, pad: int, dilation: int, ceil_mode: bool
) -> int:
    """Output length of a pooling along one dimension (PyTorch's rule).

    Parameters
    ----------
    n : int
        Input length (H or W).
    k : int
        Kernel length.
    stride, dilation : int
        Stride and dilation (>= 1).
    pad : int
        Padding on *each* side.
    ceil_mode : bool
        Round the window count up instead of down.

    Returns
    -------
    int
        ``floor_or_ceil((n + 2*pad - dilation*(k-1) - 1) / stride) + 1``; with
        ``ceil_mode``, one less if the last window would start at or after
        ``n + pad`` (a window may not start inside the right/bottom padding).
        Exact integer arithmetic; the result may be ``<= 0`` (callers raise).
    """
    n, k, stride, pad, dilation = (int(v) for v in (n, k, stride, pad, dilation))
    span = n + 2 * pad - dilation * (k - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1  # ceil division
        if (out - 1) * stride >= n + pad:
            out -= 1
    else:
        out = span // stride + 1
    return out


def resolve_conv_padding(
    padding: ConvPadding,
    in_hw: IntPair,
    kernel_hw: IntPair,
    stride_hw: IntPair,
    dilation_hw: IntPair,
) -> tuple[int, int, int, int]:
    """Turn a conv ``padding`` argument into explicit ``(top, bottom, left, right)``.

    Parameters
    ----------
    padding : int, (int, int), "valid" or "same"
        An int or ``(ph, pw)`` pads ``ph`` rows on top and bottom and ``pw``
        columns left and right. ``"valid"`` means no padding. ``"same"`` makes
        the output size ``ceil(n / stride)`` per dimension: the total padding
        is ``max((out-1)*stride + dilation*(k-1) + 1 - n, 0)``, split as
        ``top = total // 2`` and ``bottom = total - top`` (the extra pixel of
        an odd total goes to the bottom/right, as in Keras, and as in PyTorch,
        which only supports ``"same"`` with stride 1).
    in_hw, kernel_hw, stride_hw, dilation_hw : int or (int, int)
        Input size (H, W), kernel size (R, S), stride and dilation.

    Returns
    -------
    tuple of int
        ``(top, bottom, left, right)``.

    Raises
    ------
    ValueError
        For an unknown padding string or a negative padding.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(
                f"padding must be an int, a pair of ints, 'valid' or 'same'; got {padding!r}"
            )
        sizes = zip(
            _pair(in_hw, "in_hw", 0),
            _pair(kernel_hw, "kernel_hw", 1),
            _pair(stride_hw, "stride", 1),
            _pair(dilation_hw, "dilation", 1),
        )
        pads: list[int] = []
        for n, k, stride, dilation in sizes:
            out = -(-n // stride)  # ceil(n / stride)
            total = max(_reach(out, k, stride, dilation) - n, 0)
            pads += [total // 2, total - total // 2]
        return (pads[0], pads[1], pads[2], pads[3])
    ph, pw = _pair(padding, "padding", 0)
    return (ph, ph, pw, pw)


def conv2d_output_hw(
    in_hw: IntPair,
    kernel_hw: IntPair,
    stride: IntPair,
    padding: ConvPadding,
    dilation: IntPair,
) -> tuple[int, int]:
    """Output size ``(P, Q)`` of a convolution: :func:`conv2d_output_size` per dimension.

    Parameters
    ----------
    in_hw, kernel_hw, stride, dilation : int or (int, int)
        Input size (H, W), kernel size (R, S), stride and dilation.
    padding : int, (int, int), "valid" or "same"
        As :func:`resolve_conv_padding` takes it.

    Returns
    -------
    (int, int)
        ``(P, Q)``; may be ``<= 0`` (callers raise).
    """
    top, bottom, left, right = resolve_conv_padding(padding, in_hw, kernel_hw, stride, dilation)
    (H, W), (R, S) = _pair(in_hw, "in_hw", 0), _pair(kernel_hw, "kernel_hw", 1)
    (sh, sw), (dh, dw) = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    return (
        conv2d_output_size(H, R, sh, top + bottom, dh),
        conv2d_output_size(W, S, sw, left + right, dw),
    )


def conv_transpose2d_output_hw(
    in_hw: IntPair,
    kernel_hw: IntPair,
    stride: IntPair,
    padding: IntPair,
    output_padding: IntPair,
    dilation: IntPair,
) -> tuple[int, int]:
    """Output size ``(Ho, Wo)`` of a transposed convolution (PyTorch's rule).

    ``Ho = (H - 1) * stride - 2 * padding + dilation * (R - 1) + output_padding + 1``.
    ``output_padding`` (rows and columns added at the bottom and right) must
    be smaller than the stride or the dilation: ``ValueError`` otherwise. The
    result may be ``<= 0`` (callers raise).
    """
    (H, W), (R, S) = _pair(in_hw, "in_hw", 0), _pair(kernel_hw, "kernel_hw", 1)
    st, pad = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    dil, out_pad = _pair(dilation, "dilation", 1), _pair(output_padding, "output_padding", 0)
    for o, s, d in zip(out_pad, st, dil):
        if o >= s and o >= d:
            raise ValueError(
                f"output_padding {out_pad} must be smaller than either stride {st} or "
                f"dilation {dil}"
            )
    return (
        (H - 1) * st[0] - 2 * pad[0] + dil[0] * (R - 1) + out_pad[0] + 1,
        (W - 1) * st[1] - 2 * pad[1] + dil[1] * (S - 1) + out_pad[1] + 1,
    )


def pool2d_output_hw(
    in_hw: IntPair,
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    dilation: IntPair,
    ceil_mode: bool,
) -> tuple[int, int]:
    """Output size ``(P, Q)`` of a pooling: :func:`pool2d_output_size` per dimension.

    ``padding`` is on each side; ``stride`` must be given (the ops default it
    to ``kernel_size``). The result may be ``<= 0`` (callers raise).
    """
    (H, W), (R, S) = _pair(in_hw, "in_hw", 0), _pair(kernel_size, "kernel_size", 1)
    (sh, sw), (ph, pw) = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    return (
        pool2d_output_size(H, R, sh, ph, dh, ceil_mode),
        pool2d_output_size(W, S, sw, pw, dw, ceil_mode),
    )


class _NCHWShape:
    """What conv and pool records share: an (N, C, H, W) input and ``out_hw = (P, Q)``."""

    N: int
    C: int
    H: int
    W: int
    out_hw: tuple[int, int]

    @property
    def P(self) -> int:
        """Output height."""
        return self.out_hw[0]

    @property
    def Q(self) -> int:
        """Output width."""
        return self.out_hw[1]

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)


@dataclass(frozen=True)
class ConvShape(_NCHWShape):
    """One 2-D convolution: x is (N,C,H,W), w is (K,C/G,R,S), y is (N,K,P,Q).

    ``stride``, ``padding`` and ``dilation`` are given as :func:`conv2d
    <fastconv.reference.conv2d>` takes them (an int or a pair; padding also
    ``"same"`` or ``"valid"``), so they can be passed straight to the ops.
    The anchor layers of ``fastconv._shapes`` use symmetric ints only.
    The output size is not checked here (the ops raise for ``P, Q <= 0``).
    """

    name: str
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: IntPair = 1
    padding: ConvPadding = 0
    dilation: IntPair = 1
    groups: int = 1

    kind = "conv"

    @cached_property
    def pads(self) -> tuple[int, int, int, int]:
        """Explicit padding ``(top, bottom, left, right)``, from :func:`resolve_conv_padding`."""
        hw, rs = (self.H, self.W), (self.R, self.S)
        return resolve_conv_padding(self.padding, hw, rs, self.stride, self.dilation)

    @cached_property
    def out_hw(self) -> tuple[int, int]:
        """``(P, Q)``, from :func:`conv2d_output_hw`."""
        hw, rs = (self.H, self.W), (self.R, self.S)
        return conv2d_output_hw(hw, rs, self.stride, self.padding, self.dilation)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.K, self.C // self.groups, self.R, self.S)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.K, self.P, self.Q)

    @property
    def kwargs(self) -> dict:
        """``stride``, ``padding``, ``dilation`` and ``groups``, as the conv ops take them."""
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
        }

    @property
    def flops(self) -> int:
        """FLOPs of one pass (forward, backward-input or backward-weight):
        ``2*N*K*P*Q*(C/G)*R*S`` (one multiply and one add per tap)."""
        return 2 * self.N * self.K * self.P * self.Q * (self.C // self.groups) * self.R * self.S

    def describe(self) -> str:
        """Short human-readable summary, e.g. ``N=128 1->32 28x28 k3x3 s1 p0 -> 26x26``."""
        g = f" g{self.groups}" if self.groups != 1 else ""
        d = f" d{self.dilation}" if self.dilation != 1 else ""
        return (
            f"N={self.N} {self.C}->{self.K} {self.H}x{self.W} k{self.R}x{self.S} "
            f"s{self.stride} p{self.padding}{d}{g} -> {self.P}x{self.Q}"
        )


@dataclass(frozen=True)
class PoolShape(_NCHWShape):
    """One 2-D pooling (``op`` is ``"max"`` or ``"avg"``): x is (N,C,H,W), y is (N,C,P,Q).

    ``kernel``, ``stride``, ``padding`` (on each side) and ``dilation`` are ints
    or pairs; the anchor layers of ``fastconv._shapes`` use square ints, no
    dilation and floor mode. The output size is not checked here (the ops
    raise for ``P, Q <= 0``).
    """

    name: str
    op: str
    N: int
    C: int
    H: int
    W: int
    kernel: IntPair
    stride: IntPair
    padding: IntPair = 0
    dilation: IntPair = 1
    ceil_mode: bool = False

    kind = "pool"

    @cached_property
    def out_hw(self) -> tuple[int, int]:
        """``(P, Q)``, from :func:`pool2d_output_hw`."""
        hw = (self.H, self.W)
        k, s, p, d = self.kernel, self.stride, self.padding, self.dilation
        return pool2d_output_hw(hw, k, s, p, d, self.ceil_mode)

    @cached_property
    def pads(self) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)``: the padding plus, at the bottom and right,
        the overhang of ``ceil_mode`` windows, so that every window fits."""
        (R, S), (sh, sw) = _pair(self.kernel, "kernel_size", 1), _pair(self.stride, "stride", 1)
        (ph, pw), (dh, dw) = _pair(self.padding, "padding", 0), _pair(self.dilation, "dilation", 1)
        bottom = max(_reach(self.P, R, sh, dh) - self.H - ph, 0)
        right = max(_reach(self.Q, S, sw, dw) - self.W - pw, 0)
        return ph, bottom, pw, right

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.P, self.Q)

    def describe(self) -> str:
        """Short human-readable summary, e.g. ``N=128 C=32 26x26 max k2 s2 p0 -> 13x13``."""
        d = f" d{self.dilation}" if self.dilation != 1 else ""
        ceil = " ceil" if self.ceil_mode else ""
        return (
            f"N={self.N} C={self.C} {self.H}x{self.W} {self.op} k{self.kernel} "
            f"s{self.stride} p{self.padding}{d}{ceil} -> {self.P}x{self.Q}"
        )
