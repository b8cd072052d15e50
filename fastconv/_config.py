"""Threads and build/run-time configuration."""

from __future__ import annotations

from typing import Any

from . import _core

_CONV_PASSES = ("forward", "backward_input", "backward_weight")


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
        blocks), and ``kernels``: for each op, the kernel variant it runs on
        the active ISA (``<op>_<pass>_<algo>__<isa>``; GEMM-based paths name
        the GEMM microkernel, e.g. ``sgemm_ukernel_14x32__avx512``).
    """
    info = dict(_core.build_info())
    isa = info["isa_active"]
    gemm = info["gemm"]["ukernel"]  # e.g. sgemm_ukernel_14x32__avx512
    k = {}
    for p in _CONV_PASSES:
        k[f"conv2d_{p} (algo='direct')"] = f"conv2d_{p}_direct__{isa}"
        k[f"conv2d_{p} (algo='im2col')"] = f"im2col + {gemm}"
        k[f"conv2d_{p} (algo='implicit')"] = f"implicit + {gemm}"
    k["conv2d_backward_bias"] = f"conv2d_backward_bias__{isa}"
    k["conv2d (algo='auto')"] = (
        "per pass and shape: direct when K/groups < 4, else im2col or implicit "
        "(fastconv._core.conv2d_choose_algo gives the choice for a shape)"
    )
    for op in (
        "max_pool2d_forward",
        "max_pool2d_backward",
        "avg_pool2d_forward",
        "avg_pool2d_backward",
    ):
        k[op] = f"{op}__{isa}"
    k["linear"] = gemm
    info["kernels"] = k
    # The registry's entries as compiled for this ISA; the GEMM microkernel's
    # name also gives its register tile.
    info["kernel_variants"] = [
        gemm if name == "sgemm_ukernel" else f"{name}__{isa}" for name in _core.kernel_names()
    ]
    return info
