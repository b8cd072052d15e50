"""fastconv's GEMM against numpy.matmul on the shapes of fastconv.bench_gemm.

As a script (the suite with its peak probe and target checks):

    python benchmarks/bench_gemm.py [--threads N] [--repeats R] [--full]

(the same as ``fastconv bench --suite gemm``). With pytest-benchmark:

    python -m pytest benchmarks/bench_gemm.py --benchmark-only
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fastconv import _core
from fastconv.bench_gemm import SHAPES, operands


@pytest.mark.parametrize("contender", ["fastconv", "numpy"])
@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_gemm(benchmark, shape, contender):
    a, b = operands(shape)
    out = np.zeros((shape.M, shape.N), np.float32)  # reused, as numpy's out=
    if contender == "fastconv":
        benchmark(_core.sgemm, a, b, trans_b=shape.trans_b, out=out)
    else:
        benchmark(np.matmul, a, b.T if shape.trans_b else b, out=out)


if __name__ == "__main__":
    from fastconv.bench import main

    sys.exit(main(["--suite", "gemm", *sys.argv[1:]]))
