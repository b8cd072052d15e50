"""The named layers of :mod:`fastconv._shapes`, one tuple per kind.

``fastconv._shapes.SUITES["mnist"]``, ``["alexnet"]`` and ``["lenet5"]`` hold
the layers in network order; every layer has a stable dotted name
(``alexnet.conv2``) used as the pytest-benchmark test id and as the row label
of ``python -m fastconv.bench``.
"""

from __future__ import annotations

from fastconv._shapes import SUITES, ConvShape, LinearShape, PoolShape


def _of_kind(cls: type) -> tuple:
    """Every layer of every suite that is a ``cls``, suites in ``SUITES`` order."""
    return tuple(s for layers in SUITES.values() for s in layers if isinstance(s, cls))


#: Every convolution layer of every suite.
CONV_SHAPES: tuple[ConvShape, ...] = _of_kind(ConvShape)
#: Every pooling layer of every suite.
POOL_SHAPES: tuple[PoolShape, ...] = _of_kind(PoolShape)
#: Every fully connected layer of every suite.
LINEAR_SHAPES: tuple[LinearShape, ...] = _of_kind(LinearShape)
