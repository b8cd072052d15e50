"""pytest-benchmark: max/avg pooling forward and backward on the named layers.

Run from the repository root::

    python -m pytest benchmarks/bench_pool.py --benchmark-only

Test ids are ``<layer>-<op>-<strategy>``, e.g.
``test_pool_layer[alexnet.pool1-fwd-auto]`` (``auto`` is fastconv's pool);
the strategies are those of ``fastconv.bench_strategies`` that implement
pools. Max-pool forward returns indices (what training needs); backward
consumes them. The rate in ``extra_info`` is GB/s of the bytes each op must
read and write.
"""

from __future__ import annotations

from typing import Callable

import pytest
from shapes import POOL_SHAPES, layer_params

from fastconv._shapes import LayerShape


@pytest.mark.parametrize(("shape", "op", "strategy"), layer_params(POOL_SHAPES))
def test_pool_layer(
    bench_layer: Callable[..., None], shape: LayerShape, op: str, strategy: str
) -> None:
    bench_layer(shape, op, strategy)
