"""pytest-benchmark: conv2d ops and linear on the named layers, every strategy.

Run from the repository root::

    python -m pytest benchmarks/bench_conv.py --benchmark-only
    python -m pytest benchmarks/bench_conv.py --benchmark-only -k "mnist and fwd"

Test ids are ``<layer>-<op>-<strategy>``, e.g.
``test_conv_layer[mnist.conv2-bwd_input-im2col]``; each (layer, op) is one
pytest-benchmark group, so its table compares the strategies directly. Ops:
``fwd``, ``bwd_input``, ``bwd_weight`` and ``bwd`` (all three gradients);
strategies: those of ``fastconv.bench_strategies`` (``reference``, ``cython``,
each fastconv algorithm, ``auto``, ``torch``; unavailable ones are skipped
with the reason). The whole matrix takes several minutes (AlexNet's direct
passes take seconds per call); select with ``-k``.
"""

from __future__ import annotations

from typing import Callable

import pytest
from shapes import CONV_SHAPES, LINEAR_SHAPES, layer_params

from fastconv._shapes import LayerShape


@pytest.mark.parametrize(("shape", "op", "strategy"), layer_params(CONV_SHAPES))
def test_conv_layer(
    bench_layer: Callable[..., None], shape: LayerShape, op: str, strategy: str
) -> None:
    bench_layer(shape, op, strategy)


@pytest.mark.parametrize(("shape", "op", "strategy"), layer_params(LINEAR_SHAPES))
def test_linear_layer(
    bench_layer: Callable[..., None], shape: LayerShape, op: str, strategy: str
) -> None:
    bench_layer(shape, op, strategy)
