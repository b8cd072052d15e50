"""pytest-benchmark: max/avg pooling forward and backward on the named layers.

Run from the repository root::

    python -m pytest benchmarks/bench_pool.py --benchmark-only

Test ids are ``<layer>-<pass>-<contender>``, e.g.
``test_pool_layer[alexnet.pool1-forward-fastconv]``. Max-pool forward returns
indices (what training needs); backward consumes them. The rate in
``extra_info`` is GB/s of the bytes each pass must read and write.
"""

from __future__ import annotations

from typing import Callable

import pytest
from shapes import POOL_SHAPES

from fastconv._shapes import PoolShape


@pytest.mark.parametrize("contender", ("fastconv", "reference"))
@pytest.mark.parametrize("pass_", ("forward", "backward"))
@pytest.mark.parametrize("shape", POOL_SHAPES, ids=lambda s: s.name)
def test_pool_layer(
    bench_layer: Callable[..., None], shape: PoolShape, pass_: str, contender: str
) -> None:
    bench_layer(shape, pass_, contender)
