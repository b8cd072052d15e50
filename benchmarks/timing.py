"""The timing helpers of ``python -m fastconv.bench``, for scripts in this directory.

:func:`time_interleaved` times several callables side by side in interleaved
blocks (warm-up, settling calls, median); :func:`limit_blas_threads` caps
NumPy's BLAS threads with threadpoolctl when it is installed;
:func:`make_contenders` builds the fastconv / reference / torch callables of
one named layer and pass with their inputs allocated once.
"""

from __future__ import annotations

from fastconv.bench import (
    Contender,
    Timing,
    environment,
    limit_blas_threads,
    make_contenders,
    passes_of,
    time_interleaved,
)

__all__ = [
    "Contender",
    "Timing",
    "environment",
    "limit_blas_threads",
    "make_contenders",
    "passes_of",
    "time_interleaved",
]
