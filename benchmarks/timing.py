"""The harness of ``python -m fastconv.bench``, for scripts in this directory (nothing is
redefined here: each name comes from the package module that owns it).

:func:`time_interleaved` times several callables side by side in interleaved
blocks (warm-up, settling calls, median); :func:`limit_blas_threads` caps
NumPy's BLAS threads with threadpoolctl when it is installed;
:class:`CpuMonitor` measures the load other processes put on the machine
(all three from :mod:`fastconv._timing`). :func:`make_contenders` builds the
fastconv / reference / torch callables of one named layer and pass with their
inputs allocated once (:mod:`fastconv.bench_cases`); :func:`environment`
describes the machine (:mod:`fastconv.bench_report`).
"""

from __future__ import annotations

from fastconv._timing import CpuMonitor, Timing, limit_blas_threads, time_interleaved
from fastconv.bench_cases import Contender, make_contenders, passes_of
from fastconv.bench_report import environment

__all__ = [
    "Contender",
    "CpuMonitor",
    "Timing",
    "environment",
    "limit_blas_threads",
    "make_contenders",
    "passes_of",
    "time_interleaved",
]
