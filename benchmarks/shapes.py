"""The named layers of :mod:`fastconv._shapes`, one tuple per kind, and the test
parameters of the pytest-benchmark files.

``fastconv._shapes.SUITES`` holds the layers of each suite in network order;
every layer has a stable dotted name (``alexnet.conv2``) used as the row label
of ``fastconv bench`` and in the pytest-benchmark test ids,
``<layer>-<op>-<strategy>`` (``mnist.conv2-bwd_input-im2col``), the ops of
:func:`fastconv.bench_cases.layer_ops` and the strategies of
:func:`fastconv.bench_strategies.registry`.
"""

from __future__ import annotations

import pytest

from fastconv._shapes import SUITES, ConvShape, LayerShape, LinearShape, PoolShape
from fastconv.bench_cases import layer_ops
from fastconv.bench_strategies import registry


def _of_kind(cls: type) -> tuple:
    """Every layer of every suite that is a ``cls``, suites in ``SUITES`` order."""
    return tuple(s for layers in SUITES.values() for s in layers if isinstance(s, cls))


#: Every convolution layer of every suite.
CONV_SHAPES: tuple[ConvShape, ...] = _of_kind(ConvShape)
#: Every pooling layer of every suite.
POOL_SHAPES: tuple[PoolShape, ...] = _of_kind(PoolShape)
#: Every fully connected layer of every suite.
LINEAR_SHAPES: tuple[LinearShape, ...] = _of_kind(LinearShape)


def layer_params(shapes: tuple[LayerShape, ...]) -> list:
    """``(shape, op, strategy)`` for every op of ``shapes`` and every registered
    strategy that implements the layer's kind (unavailable ones skip when run),
    with ids ``<layer>-<op>-<strategy>``."""
    strategies = registry().values()
    return [
        pytest.param(s, op, st.name, id=f"{s.name}-{op}-{st.name}")
        for s in shapes
        for op in layer_ops(s)
        for st in strategies
        if s.kind in st.kinds
    ]
