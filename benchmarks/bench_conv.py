"""pytest-benchmark: conv2d passes and linear on the named layers, fastconv vs the reference.

Run from the repository root::

    python -m pytest benchmarks/bench_conv.py --benchmark-only
    python -m pytest benchmarks/bench_conv.py --benchmark-only -k "mnist and forward"

Test ids are ``<layer>-<pass>-<contender>``, e.g.
``test_conv_layer[mnist.conv2-backward-im2col]``; each (layer, pass) is one
pytest-benchmark group, so its table compares the contenders directly.
Contenders: ``direct`` and ``im2col`` (fastconv's algorithms), ``auto``
(what ``algo="auto"`` runs) and ``reference`` (``fastconv.reference``,
NumPy + BLAS). The whole matrix takes several minutes (AlexNet's direct
passes take seconds per call); select with ``-k``.
"""

from __future__ import annotations

from typing import Callable

import pytest
from shapes import CONV_SHAPES, LINEAR_SHAPES

from fastconv._shapes import ConvShape, LinearShape

CONV_PASSES = ("forward", "backward", "backward_input", "backward_weight")
CONV_CONTENDERS = ("direct", "im2col", "auto", "reference")


@pytest.mark.parametrize("contender", CONV_CONTENDERS)
@pytest.mark.parametrize("pass_", CONV_PASSES)
@pytest.mark.parametrize("shape", CONV_SHAPES, ids=lambda s: s.name)
def test_conv_layer(
    bench_layer: Callable[..., None], shape: ConvShape, pass_: str, contender: str
) -> None:
    bench_layer(shape, pass_, contender)


@pytest.mark.parametrize("contender", ("fastconv", "reference"))
@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=lambda s: s.name)
def test_linear_layer(bench_layer: Callable[..., None], shape: LinearShape, contender: str) -> None:
    bench_layer(shape, "forward", contender)
