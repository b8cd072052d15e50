"""Named layer shapes of the anchor networks (re-exported from :mod:`fastconv._shapes`).

``SUITES["mnist"]``, ``SUITES["alexnet"]`` and ``SUITES["lenet5"]`` hold the
layers in network order; every layer has a stable dotted name
(``alexnet.conv2``) used as the pytest-benchmark test id and as the row label
of ``python -m fastconv.bench``.
"""

from __future__ import annotations

from fastconv._shapes import (
    SUITES,
    ConvShape,
    LayerShape,
    LinearShape,
    PoolShape,
    all_shapes,
    get_shape,
    suite,
)

__all__ = [
    "CONV_SHAPES",
    "LINEAR_SHAPES",
    "POOL_SHAPES",
    "SUITES",
    "ConvShape",
    "LayerShape",
    "LinearShape",
    "PoolShape",
    "all_shapes",
    "get_shape",
    "suite",
]

#: Every convolution layer of every suite.
CONV_SHAPES: tuple[ConvShape, ...] = tuple(s for s in all_shapes() if isinstance(s, ConvShape))
#: Every pooling layer of every suite.
POOL_SHAPES: tuple[PoolShape, ...] = tuple(s for s in all_shapes() if isinstance(s, PoolShape))
#: Every fully connected layer of every suite.
LINEAR_SHAPES: tuple[LinearShape, ...] = tuple(
    s for s in all_shapes() if isinstance(s, LinearShape)
)
