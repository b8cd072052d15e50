"""Smoke run of an installed fastconv: the ISA it picked and a digest of each
op's result, as one JSON line. tests/test_wheel.py runs it on the host and
under ``qemu-x86_64 -cpu <model>`` and compares the two.

A conv and a pool, forward and backward, on fixed inputs; the digests are of
the exact bytes, so two runs agree only if every bit does.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

import fastconv


def main() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 12, 12), dtype=np.float32)
    w = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
    b = rng.standard_normal(4, dtype=np.float32)
    out = {}
    for algo in fastconv._core.conv_algos():
        y = fastconv.conv2d(x, w, b, stride=1, padding=1, algo=algo)
        dy = np.ones_like(y)
        out[f"conv2d[{algo}]"] = (y,) + tuple(
            fastconv.conv2d_backward(dy, x, w, padding=1, algo=algo)
        )
    p, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    out["max_pool2d"] = (p, idx, fastconv.max_pool2d_backward(np.ones_like(p), idx, x.shape))
    a = fastconv.avg_pool2d(x, 3, stride=2, padding=1)
    out["avg_pool2d"] = (a, fastconv.avg_pool2d_backward(np.ones_like(a), x.shape, 3, 2, 1))
    digests = {
        op: hashlib.sha256(b"".join(np.ascontiguousarray(r).tobytes() for r in res)).hexdigest()
        for op, res in out.items()
    }
    print(
        json.dumps(
            {
                "isa": fastconv.show_config()["isa_active"],
                "file": fastconv.__file__,
                "digests": digests,
            }
        )
    )


if __name__ == "__main__":
    main()
