"""PyTorch's own module test samples (``module_db``) run through fastconv's layers.

For every class of ``torch.testing._internal.common_modules.module_db`` that
``fastconv.nn`` also has (looked up by name, so layers and losses added later
are picked up), each sample of its ``module_inputs_func`` builds the torch
module and ours with the same constructor arguments, copies torch's
parameters and buffers into ours, and compares, in training and (where
torch's differ) eval mode:

* the outputs (float: to float32 rounding; indices: exactly),
* the gradients of the float inputs and of every parameter for a random
  output gradient,
* the running statistics (buffers) after the forward.

Each ``module_error_inputs_func`` sample must raise, at construction or at
the forward (fastconv checks some arguments earlier than torch does).

Samples outside fastconv's contract are skipped, with the reason: inputs in
float32 only (the samples are generated in float32), on the CPU, and the
2-D layers (``*2d``) take batched (N, C, H, W) inputs, so their unbatched
(C, H, W) samples are skipped. Samples inside the contract that fastconv
does not pass yet are listed in ``KNOWN_GAPS`` with the reason (non-strict
xfail: they turn into passes when the gap is closed; then remove the entry).
Needs torch and ``expecttest`` (which ``torch.testing._internal`` imports).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")
common_modules = pytest.importorskip("torch.testing._internal.common_modules")

from fastconv import Tensor, nn  # noqa: E402

RTOL, ATOL = 1e-4, 2e-5


#: class name -> (a predicate picking its samples that fail today, why): they
#: run as non-strict xfails. None today; keep the mechanism for new gaps.
KNOWN_GAPS: dict = {}


def _marks(name: str, sample) -> tuple:
    gap = KNOWN_GAPS.get(name)
    if gap and gap[0](sample):
        return (pytest.mark.xfail(reason=gap[1], strict=False),)
    return ()


def _samples() -> list:
    """(id, ModuleInfo, training, ModuleInput) of every class both libraries have."""
    out = []
    for info in common_modules.module_db:
        name = info.module_cls.__name__
        if not hasattr(nn, name):
            continue
        for training in (True, False) if info.train_and_eval_differ else (True,):
            inputs = info.module_inputs_func(
                info, device="cpu", dtype=torch.float32, requires_grad=True, training=training
            )
            mode = "train" if training else "eval"
            for i, sample in enumerate(inputs):
                sid = f"{name}-{mode}-{i}-{sample.desc or 'default'}"
                out.append(
                    pytest.param(sid, info, training, sample, id=sid, marks=_marks(name, sample))
                )
    return out


def _error_samples() -> list:
    out = []
    for info in common_modules.module_db:
        name = info.module_cls.__name__
        if not hasattr(nn, name) or info.module_error_inputs_func is None:
            continue
        errors = info.module_error_inputs_func(
            info, device="cpu", dtype=torch.float32, requires_grad=True, training=True
        )
        for i, e in enumerate(errors):
            out.append((f"{name}-error-{i}", info, e))
    return out


SAMPLES = _samples()
ERROR_SAMPLES = _error_samples()


def _ours(value):
    """A torch value as fastconv takes it: float tensors become Tensors (same requires_grad),
    integer tensors NumPy arrays, containers converted item by item."""
    if isinstance(value, torch.Tensor):
        a = value.detach().numpy().copy()
        if value.is_floating_point():
            return Tensor(a, requires_grad=value.requires_grad)
        return a
    if isinstance(value, (list, tuple)):
        return type(value)(_ours(v) for v in value)
    if isinstance(value, dict):
        return {k: _ours(v) for k, v in value.items()}
    return value


def _constructor_value(value):
    """Constructor arguments: tensors (a loss's class weights) as NumPy arrays."""
    if isinstance(value, torch.Tensor):
        return value.detach().numpy().copy()
    if isinstance(value, (list, tuple)):
        return type(value)(_constructor_value(v) for v in value)
    return value


def _outside_contract(name: str, args: tuple) -> str | None:
    """Why fastconv does not take this sample, or None."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if any(t.is_floating_point() and t.dtype != torch.float32 for t in tensors):
        return "fastconv takes float32 (the kernels) or float64 (the reference) only"
    if name.endswith("2d") and tensors and tensors[0].dim() == 3:
        return "unbatched (C, H, W) input: fastconv's 2-D layers take batched (N, C, H, W)"
    return None


def _build(info, sample):
    ctor = sample.constructor_input
    theirs = info.module_cls(*ctor.args, **ctor.kwargs)
    ours = getattr(nn, info.module_cls.__name__)(
        *_constructor_value(ctor.args), **{k: _constructor_value(v) for k, v in ctor.kwargs.items()}
    )
    return ours, theirs


def _copy_state(ours, theirs) -> None:
    """torch's parameters and buffers into ours; the parameters must have the same names."""
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in theirs.named_parameters()]
    theirs_state = theirs.state_dict()
    ours.load_state_dict(
        {k: v.detach().numpy() for k, v in theirs_state.items() if k in ours.state_dict()},
        strict=False,
    )


def _flat(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _assert_close(ours, theirs, what: str) -> None:
    a = ours.data if isinstance(ours, Tensor) else np.asarray(ours)
    b = theirs.detach().numpy()
    assert a.shape == b.shape, f"{what}: shape {a.shape} != torch's {b.shape}"
    if b.dtype.kind in "iub":
        np.testing.assert_array_equal(a, b, err_msg=what)
    else:
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=what)


@pytest.mark.parametrize("sid, info, training, sample", SAMPLES)
def test_module_sample(sid, info, training, sample):
    name = info.module_cls.__name__
    fwd = sample.forward_input
    reason = _outside_contract(name, tuple(fwd.args) + tuple(fwd.kwargs.values()))
    if reason:
        pytest.skip(reason)
    torch.manual_seed(0)
    ours, theirs = _build(info, sample)
    _copy_state(ours, theirs)
    ours.train(training)
    theirs.train(training)
    args, kwargs = _ours(tuple(fwd.args)), _ours(dict(fwd.kwargs))
    t_out = _flat(theirs(*fwd.args, **fwd.kwargs))
    o_out = _flat(ours(*args, **kwargs))
    assert len(o_out) == len(t_out), f"{len(o_out)} outputs, torch has {len(t_out)}"
    for k, (o, t) in enumerate(zip(o_out, t_out)):
        _assert_close(o, t, f"output {k}")
    for k, b in ours.named_buffers():
        _assert_close(b, theirs.get_buffer(k), f"buffer {k}")

    # Gradients for a random output gradient (of the float outputs).
    pairs = [(o, t) for o, t in zip(o_out, t_out) if t.is_floating_point() and t.requires_grad]
    if not pairs:
        return
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(t.shape).astype(np.float32) for _, t in pairs]
    torch.autograd.backward([t for _, t in pairs], [torch.tensor(g) for g in grads])
    total = None
    for (o, _), g in zip(pairs, grads):
        term = (o * Tensor(g)).sum()
        total = term if total is None else total + term
    total.backward()
    t_inputs = [a for a in _flat(tuple(fwd.args)) + list(fwd.kwargs.values())]
    o_inputs = [a for a in _flat(args) + list(kwargs.values())]
    for k, (o, t) in enumerate(zip(o_inputs, t_inputs)):
        if isinstance(t, torch.Tensor) and t.requires_grad and t.grad is not None:
            assert o.grad is not None, f"input {k} got no gradient"
            np.testing.assert_allclose(
                o.grad, t.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"grad of input {k}"
            )
    t_params = dict(theirs.named_parameters())
    for k, p in ours.named_parameters():
        if t_params[k].grad is None:
            assert p.grad is None or not np.any(p.grad), f"{k}: torch has no gradient"
            continue
        assert p.grad is not None, f"parameter {k} got no gradient"
        np.testing.assert_allclose(
            p.grad, t_params[k].grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"grad of {k}"
        )


@pytest.mark.parametrize("sid, info, err", ERROR_SAMPLES, ids=[s[0] for s in ERROR_SAMPLES])
def test_module_error_sample(sid, info, err):
    sample = err.module_error_input
    fwd = sample.forward_input  # None for a construction error
    reason = fwd is not None and _outside_contract(info.module_cls.__name__, tuple(fwd.args))
    if reason:
        pytest.skip(reason)
    errors = (TypeError, ValueError, RuntimeError, IndexError)
    on_construction = err.error_on == common_modules.ModuleErrorEnum.CONSTRUCTION_ERROR
    try:
        ours, theirs = _build(info, sample)
    except errors:
        return  # raised at construction: as torch, or earlier than torch
    assert not on_construction, f"torch raises {err.error_type.__name__} at construction"
    assert fwd is not None
    with pytest.raises(errors):
        ours(*_ours(tuple(fwd.args)), **_ours(dict(fwd.kwargs)))
