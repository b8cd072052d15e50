"""Other ways to compute fastconv's ops: the baselines that ``fastconv bench`` compares with.

None of these is used by fastconv's own ops (``algo="auto"`` never picks
them). Each strategy is a module-like object with the signatures and
semantics of :mod:`fastconv.functional` (float32, NCHW)::

    from fastconv import strategies
    strategies.cython.conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)
    strategies.cython.conv2d_backward(grad_output, x, weight, stride=1, padding=0, dilation=1,
                                      groups=1, *, output_mask=(True, True, True))
    strategies.cython.max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1,
                                 ceil_mode=False, return_indices=False)
    strategies.cython.max_pool2d_backward(grad_output, indices, input_shape)

``cython``
    Plain Cython loops over typed memoryviews (``fastconv/_cython_conv.pyx``),
    parallel over the batch with ``prange``: what a competent Python user
    would write by hand. Built with fastconv when Cython >= 3.0 is present.

``cython_error``
    None when ``cython`` can run, else a str saying why not (its functions then
    raise ``ImportError`` with that text; importing this module always works).
"""

from __future__ import annotations

from . import _strategy_cython as cython

cython_error: str | None = cython.IMPORT_ERROR

__all__ = ["cython", "cython_error"]
