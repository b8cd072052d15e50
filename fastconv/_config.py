"""Threads and build/run-time configuration."""

from __future__ import annotations

from typing import Any

from . import _core


def set_num_threads(n: int) -> None:
    """Set the number of threads fastconv ops use, in every Python thread.

    fastconv's count is OpenMP's thread setting (``omp_get_max_threads``), so
    ``threadpoolctl.threadpool_info()`` reports it, and
    ``threadpool_limits(...)`` or ``omp_set_num_threads`` called by another
    library on the same OpenMP runtime change it for the calling thread until
    the next ``set_num_threads``. A child process forked after fastconv ran a
    threaded op stays on one thread (GNU OpenMP's workers do not survive
    ``fork``); one forked before can use threads.

    Results do not depend on it: they are bitwise identical for any ``n``, and
    every thread computes in the caller's floating-point mode (rounding,
    flush-to-zero).
    """
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads fastconv ops started on this thread use (default:
    OpenMP's, which honours ``OMP_NUM_THREADS``; see :func:`set_num_threads`)."""
    return _core.get_num_threads()


def release_workspace() -> None:
    """Free the workspaces fastconv keeps between calls (column buffers, packed
    operands, GEMM tiles) of the calling thread and of its OpenMP workers.

    The next op allocates what it needs again (and pays the page faults of
    fresh memory once). ``fastconv._core.workspace_bytes()`` gives the bytes
    held now and at most since ``fastconv._core._reset_workspace_peak()``.
    """
    _core.release_workspace()


def show_config() -> dict[str, Any]:
    """Describe this build and the kernels it would use.

    Returns
    -------
    dict
        ``version``, ``isas_compiled``, ``isa_detected`` (best the CPU runs),
        ``isa_active`` (in use; ``FASTCONV_ISA`` can force a lower level),
        ``openmp`` / ``openmp_runtime`` / ``openmp_version``, ``num_threads``,
        ``gemm`` (the microkernel and its MR x NR tile, the MC/KC/NC cache
        blocks), ``kernels``: for each op, the kernel variant it runs on the
        active ISA (``<op>_<pass>_<algo>__<isa>``; GEMM-based paths name the
        GEMM microkernel, e.g. ``sgemm_ukernel_14x32__avx512``), and
        ``kernel_variants``: every registered kernel as compiled for the active
        ISA. Both come from the C++ kernel registry (``_core.op_kernels()``,
        ``_core.kernel_variants()``).
    """
    info = dict(_core.build_info())
    info["kernels"] = dict(_core.op_kernels())
    info["kernel_variants"] = list(_core.kernel_variants())
    return info
