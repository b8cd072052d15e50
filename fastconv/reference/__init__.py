"""Reference implementations of the fastconv operators in plain NumPy.

This module is the **test oracle** for fastconv's C++ kernels and the
**benchmark baseline** they are measured against. It aims to be, in this order:

1. correct: it reproduces PyTorch's CPU semantics (``torch.nn.functional``
   and the matching backward ops), including the corner cases spelled out in
   each docstring (``padding="same"``, ``ceil_mode`` windows, max-pool ties and
   NaNs, avg-pool divisors, ...);
2. readable: every function is a short, direct transcription of the maths;
3. reasonably fast: the work is vectorised over batch, channels and pixels
   with NumPy, and convolutions run on BLAS (``numpy.matmul``). Python loops
   only run over the small kernel offsets ``(r, s)``.

Conventions
-----------
* Layout is NCHW; convolution weights are ``(K, C // groups, R, S)``.
  Shape letters used in comments: ``N`` batch, ``C`` input channels, ``H, W``
  input size, ``K`` output channels, ``R, S`` kernel size, ``P, Q`` output
  size, ``G`` groups.
* float32 and float64 are supported; results have the dtype of the input
  (there is no silent up-cast and no dtype coercion). Operands of one call must
  share a dtype.
* Convolutions are cross-correlations, as in PyTorch.
* ``stride``, ``padding``, ``dilation`` and ``kernel_size`` take an int or an
  ``(h, w)`` pair.
* The pooling summation / scatter orders are defined precisely (see
  :func:`avg_pool2d`, :func:`avg_pool2d_backward`, :func:`max_pool2d_backward`)
  so that a C++ kernel that follows the same order can equal this module bit
  for bit, also in float32.

Modules
-------
:mod:`~fastconv.reference.shapes` (output sizes, ``"same"`` padding and the
``ConvShape``/``PoolShape`` records: the Python shape rules, which
``fastconv._shapes`` and the tests use too),
:mod:`~fastconv.reference.conv`, :mod:`~fastconv.reference.pool` and
:mod:`~fastconv.reference.dense` (linear, ReLU). Every public function is
importable from ``fastconv.reference`` itself. The package never imports
``fastconv._core``.
"""

# fastconv.tensor reads the conv output size through reference._conv_geometry.
from .conv import _conv_geometry as _conv_geometry
from .conv import conv2d, conv2d_backward
from .dense import linear, linear_backward, relu, relu_backward
from .pool import (
    avg_pool2d,
    avg_pool2d_backward,
    conv2d_max_pool2d,
    max_pool2d,
    max_pool2d_backward,
)
from .shapes import (
    ConvPadding,
    IntPair,
    conv2d_output_hw,
    conv2d_output_size,
    pool2d_output_hw,
    pool2d_output_size,
    resolve_conv_padding,
)

__all__ = [
    "ConvPadding",
    "IntPair",
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward",
    "conv2d_max_pool2d",
    "conv2d_output_hw",
    "conv2d_output_size",
    "linear",
    "linear_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "pool2d_output_hw",
    "pool2d_output_size",
    "relu",
    "relu_backward",
    "resolve_conv_padding",
]
