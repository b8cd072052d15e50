"""fastconv: SIMD-optimised, OpenMP-threaded CPU convolution and pooling for
NumPy, with PyTorch's semantics.

Functional API (float32, NCHW): :func:`conv2d`, :func:`conv2d_backward`,
:func:`max_pool2d`, :func:`max_pool2d_backward`, :func:`avg_pool2d`,
:func:`avg_pool2d_backward`, :func:`linear`. The same functions in plain
NumPy (float32 or float64) are in :mod:`fastconv.reference`.
"""

from . import _core, models, nn, optim, profiler, reference
from ._config import get_num_threads, set_num_threads, show_config
from .functional import (
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_backward,
    linear,
    linear_backward,
    max_pool2d,
    max_pool2d_backward,
    relu,
    relu_backward,
)
from .tensor import Tensor, no_grad

__version__ = _core.__version__

__all__ = [
    "Tensor",
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward",
    "get_num_threads",
    "linear",
    "linear_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "models",
    "nn",
    "no_grad",
    "optim",
    "profiler",
    "reference",
    "relu",
    "relu_backward",
    "set_num_threads",
    "show_config",
]
