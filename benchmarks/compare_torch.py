"""fastconv vs PyTorch, side by side on the named layers, at the same thread count.

For every layer of the chosen suites (default: all) and every op (conv:
forward, backward-input, backward-weight, plus all three gradients at once
with ``--full``; pools: forward with indices and backward; linear: forward),
time what ``algo="auto"`` runs in fastconv and PyTorch's CPU op
(``torch.nn.functional`` / ``torch.ops.aten.*_backward``, oneDNN for
convolutions) on the same NumPy buffers (``torch.from_numpy``, no copies),
interleaved in one run: ``fastconv bench --strategies auto,torch``. The
summary gives auto's geometric-mean speed-up over torch (torch's median over
fastconv's, >1: fastconv is faster), and every fastconv result is checked
against torch's (the baseline when the reference is not run).

Usage (from the repository root)::

    python benchmarks/compare_torch.py                 # all suites, quick
    python benchmarks/compare_torch.py --suite mnist --threads 1 --full
    MALLOC_MMAP_THRESHOLD_=2000000000 MALLOC_TRIM_THRESHOLD_=4000000000 \\
        python benchmarks/compare_torch.py             # torch's tuned-allocator numbers

Takes the options of ``python -m fastconv.bench`` (``--suite``, ``--shape``,
``--layer``, ``--threads``, ``--repeats``, ``--quick``/``--full``, ``--json``,
``--plot``; ``--strategies`` replaces ``auto,torch``). Exits with
a message, and status 0, when PyTorch is not installed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

try:
    import fastconv  # noqa: F401
except ImportError:  # run from a source checkout without installing: use the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastconv import bench


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, check that torch is importable, and run the comparison."""
    parser = bench.add_arguments(
        argparse.ArgumentParser(
            prog="python benchmarks/compare_torch.py",
            description="fastconv (algo='auto') vs PyTorch on the named layers.",
        )
    )
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("compare_torch: PyTorch is not installed; nothing to compare (pip install torch).")
        return 0
    if args.suite is None and not args.shape:
        args.suite = ["all"]
    if args.strategies is None:
        args.strategies = ["auto", "torch"]
    return bench.run(args)


if __name__ == "__main__":
    sys.exit(main())
