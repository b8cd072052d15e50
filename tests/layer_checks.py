"""Helpers shared by test_nn.py and test_models.py: random inputs and the
forward/backward comparison of a fastconv layer with a PyTorch one."""

from __future__ import annotations

import numpy as np
import pytest

from fastconv import Tensor


def f32(*shape, seed=0):
    """A float32 standard-normal array, reproducible from ``seed``."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def torch_check(ours, theirs, x, rtol=2e-4, atol=2e-5, params=None, grad_seed=99):
    """Forward and backward of our layer and a torch layer holding the same weights.

    Compares the outputs, the input gradients for a random output gradient and
    the parameter gradients: the given ``(ours, theirs)`` pairs, or by default
    every parameter of ``ours`` with torch's of the same name.
    """
    torch = pytest.importorskip("torch")
    xt = Tensor(x, requires_grad=True)
    y = ours(xt)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=rtol, atol=atol)
    g = f32(*y.shape, seed=grad_seed)
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=rtol, atol=atol)
    if params is None:
        tparams = dict(theirs.named_parameters())
        params = [(p, tparams[k]) for k, p in ours.named_parameters()]
    for ours_p, theirs_p in params:
        np.testing.assert_allclose(ours_p.grad, theirs_p.grad.numpy(), rtol=rtol, atol=atol)


def params_from_torch(ours, theirs):
    """Copy every parameter and buffer of the torch module into ours, by name.

    Our arrays keep their dtype; a parameter or buffer torch has and we do not
    (or the reverse) fails the test, naming it.
    """
    theirs_state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    ours_state = ours.state_dict()
    assert set(ours_state) == set(theirs_state), (sorted(ours_state), sorted(theirs_state))
    ours.load_state_dict(theirs_state)
