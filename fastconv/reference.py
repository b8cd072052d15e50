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
This module is the front of private ones, split along the ops:
``_ref_shapes`` (output sizes, ``"same"`` padding and the
``ConvShape``/``PoolShape`` records: the Python shape rules, which
``fastconv._shapes`` and the tests use too), ``_ref_conv``, ``_ref_convt``
(transposed convolution), ``_ref_pool``, ``_ref_adaptive`` (adaptive pools),
``_ref_dense`` (linear, ReLU) and ``_ref_arrays`` (dtype and rank checks,
window views, padding). Every public name is imported from here. None of them
imports ``fastconv._core``. (They are flat modules, not a subpackage, because
``tools/valgrind.sh`` and ``tools/sanitize.sh`` stage ``fastconv/*.py`` only.)
"""

from ._ref_adaptive import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_max_pool2d,
    adaptive_output_hw,
)
from ._ref_conv import conv2d, conv2d_backward
from ._ref_convt import conv_transpose2d
from ._ref_dense import linear, linear_backward, relu, relu_backward
from ._ref_pool import (
    avg_pool2d,
    avg_pool2d_backward,
    conv2d_max_pool2d,
    max_pool2d,
    max_pool2d_backward,
)
from ._ref_shapes import (
    ConvPadding,
    IntPair,
    conv2d_output_hw,
    conv2d_output_size,
    conv_transpose2d_output_hw,
    pool2d_output_hw,
    pool2d_output_size,
    resolve_conv_padding,
)

__all__ = [
    "ConvPadding",
    "IntPair",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "adaptive_output_hw",
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward",
    "conv2d_max_pool2d",
    "conv2d_output_hw",
    "conv2d_output_size",
    "conv_transpose2d",
    "conv_transpose2d_output_hw",
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
