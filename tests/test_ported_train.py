"""A PyTorch training script ported to fastconv by changing its imports only
(tests/ported_torch_train.py and tests/ported_fastconv_train.py): both give
the same losses over 20 steps from the same initial weights and batches."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
STEPS = 20


def _without_imports(path: Path) -> str:
    return re.sub(r"^(import|from) .*\n", "", path.read_text(), flags=re.M)


def test_the_two_scripts_differ_only_in_their_imports():
    torch_src = HERE / "ported_torch_train.py"
    fastconv_src = HERE / "ported_fastconv_train.py"
    assert _without_imports(torch_src) == _without_imports(fastconv_src)
    imports = re.findall(r"^(?:import|from) .*$", fastconv_src.read_text(), flags=re.M)
    assert not [line for line in imports if "torch" in line], imports


def _batches(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ten classes of 12x12 images that a small net can tell apart: a class's
    bright square sits at its own place, plus noise."""
    out = []
    for _ in range(STEPS):
        y = rng.integers(0, 10, 16)
        x = rng.standard_normal((16, 1, 12, 12)).astype(np.float32) * 0.5
        for i, c in enumerate(y):
            r, s = divmod(int(c), 4)
            x[i, 0, 3 * r : 3 * r + 3, 3 * s : 3 * s + 3] += 2.0
        out.append((x, y.astype(np.int64)))
    return out


def test_ported_script_gives_torchs_losses():
    torch = pytest.importorskip("torch")
    import ported_fastconv_train as ours
    import ported_torch_train as theirs

    torch.manual_seed(0)
    initial = {k: v.detach().numpy().copy() for k, v in theirs.SmallNet().state_dict().items()}
    batches = _batches(np.random.default_rng(0))
    torch_batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
    torch.set_num_threads(2)

    expected = theirs.train(torch_batches, {k: torch.from_numpy(v) for k, v in initial.items()})
    got = ours.train(batches, initial)

    assert len(got) == len(expected) == STEPS
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert expected[-1] < 0.85 * expected[0], "the script does learn (else the test proves little)"
