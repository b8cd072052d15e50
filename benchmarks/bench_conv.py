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
from shapes import CONV_SHAPES, LINEAR_SHAPES, ConvShape, LinearShape
from timing import make_contenders

CONV_PASSES = ("forward", "backward", "backward_input", "backward_weight")
CONV_CONTENDERS = ("direct", "im2col", "auto", "reference")


def _pick(contenders: list, wanted: str):
    """The contender whose label matches a short id (``im2col`` -> ``fastconv[im2col]``)."""
    prefix = {"reference": "reference", "fastconv": "fastconv", "auto": "fastconv[auto"}.get(
        wanted, f"fastconv[{wanted}]"
    )
    return next(c for c in contenders if c.label.startswith(prefix))


@pytest.mark.parametrize("contender", CONV_CONTENDERS)
@pytest.mark.parametrize("pass_", CONV_PASSES)
@pytest.mark.parametrize("shape", CONV_SHAPES, ids=lambda s: s.name)
def test_conv_layer(
    benchmark, measure: Callable[..., None], shape: ConvShape, pass_: str, contender: str
) -> None:
    benchmark.group = f"{shape.name} {pass_}"
    contenders, work, unit = make_contenders(shape, pass_)
    c = _pick(contenders, contender)
    measure(c.fn, work, unit, c.kernel)


@pytest.mark.parametrize("contender", ("fastconv", "reference"))
@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=lambda s: s.name)
def test_linear_layer(
    benchmark, measure: Callable[..., None], shape: LinearShape, contender: str
) -> None:
    benchmark.group = f"{shape.name} forward"
    contenders, work, unit = make_contenders(shape, "forward")
    c = _pick(contenders, contender)
    measure(c.fn, work, unit, c.kernel)
