"""The harness of ``python -m fastconv.bench``, for scripts in this directory (nothing is
redefined here: each name comes from the package module that owns it).

:func:`time_interleaved` times several callables side by side in interleaved
blocks (warm-up, settling calls, median); :func:`limit_blas_threads` caps
NumPy's BLAS threads with threadpoolctl when it is installed;
:class:`CpuMonitor` measures the load other processes put on the machine
(all three from :mod:`fastconv._timing`). :func:`make_case` allocates the
inputs of one op of a named layer and :func:`layer_ops` lists its ops
(:mod:`fastconv.bench_cases`); :func:`registry` holds the strategies, each
binding a case to a call (:mod:`fastconv.bench_strategies`);
:func:`environment` describes the machine (:mod:`fastconv.bench_report`).
"""

from __future__ import annotations

from fastconv._timing import CpuMonitor, Timing, limit_blas_threads, time_interleaved
from fastconv.bench_cases import layer_ops, make_case
from fastconv.bench_report import environment
from fastconv.bench_strategies import registry

__all__ = [
    "CpuMonitor",
    "Timing",
    "environment",
    "layer_ops",
    "limit_blas_threads",
    "make_case",
    "registry",
    "time_interleaved",
]
