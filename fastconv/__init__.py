"""fastconv: SIMD-optimised, OpenMP-threaded CPU convolution and pooling for
NumPy, with PyTorch's semantics.

Functional API (float32, NCHW): :func:`conv2d`, :func:`conv2d_backward`,
:func:`max_pool2d`, :func:`max_pool2d_backward`, :func:`avg_pool2d`,
:func:`avg_pool2d_backward`, :func:`linear`. The same functions in plain
NumPy (float32 or float64) are in :mod:`fastconv.reference`.
"""

import os as _os


def _load_core():
    """Import the extension, with GNU OpenMP's idle spin cut to ~0.3 ms.

    libgomp's threads spin for 300,000 pauses (~4 ms here) before they sleep,
    after every parallel region and at every barrier. On a machine with few
    cores that spinning takes a core from the next op's own threads, from
    the calling thread's Python code, and from other processes. libgomp reads
    GOMP_SPINCOUNT once, when it is loaded (by this import, unless another
    module loaded it first); the variable is removed again right after, so
    subprocesses and OpenMP runtimes loaded later do not see it. A user's
    own OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone.
    """
    env = _os.environ
    if "OMP_WAIT_POLICY" in env or "GOMP_SPINCOUNT" in env:
        from . import _core
    else:
        env["GOMP_SPINCOUNT"] = "20000"
        try:
            from . import _core
        finally:
            del env["GOMP_SPINCOUNT"]
    return _core


_core = _load_core()

from . import data, models, nn, ops, optim, profiler, reference
from ._config import get_num_threads, release_workspace, set_num_threads, show_config
from .functional import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_max_pool2d,
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_backward,
    conv2d_max_pool2d,
    conv_transpose2d,
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
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward",
    "conv2d_max_pool2d",
    "conv_transpose2d",
    "data",
    "get_num_threads",
    "linear",
    "linear_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "models",
    "nn",
    "no_grad",
    "ops",
    "optim",
    "profiler",
    "reference",
    "release_workspace",
    "relu",
    "relu_backward",
    "set_num_threads",
    "show_config",
]
