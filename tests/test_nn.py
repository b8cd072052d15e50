"""fastconv.nn: every layer's gradients (input and parameters), initialisation, Module.

* Gradients: each layer is run on the reference backend in float64 and its
  gradients w.r.t. the input and every parameter are checked against central
  finite differences (:func:`test_autograd.gradcheck`).
* The same layers on the fast backend (float32) are checked against
  ``torch.nn`` (forward and autograd backward, same weights) when torch is
  importable, and against direct calls of the functional backward.
* Module machinery: registration order and names, train/eval, Dropout and
  BatchNorm behaviour, state_dict / save / load, summary, init functions.
"""

from __future__ import annotations

import math
import re
from functools import partial

import numpy as np
import pytest
from layer_checks import f32 as _f32
from layer_checks import torch_check
from test_autograd import gradcheck

import fastconv
from fastconv import Tensor, nn, no_grad, ops
from fastconv import tensor as T

RNG = np.random.default_rng(2024)


def _x64(*shape):
    return Tensor(RNG.standard_normal(shape), requires_grad=True, dtype=np.float64)


def _params(layer):
    return list(layer.parameters())


# --------------------------------------------------------------------------
# Layer case tables
# --------------------------------------------------------------------------

# (name, in_shape, constructor kwargs)
CONV_CASES = [
    ("3x3", (2, 3, 6, 6), {"in_channels": 3, "out_channels": 4, "kernel_size": 3}),
    (
        "stride2-pad1-groups2-nobias",
        (2, 2, 7, 5),
        {
            "in_channels": 2,
            "out_channels": 4,
            "kernel_size": (3, 2),
            "stride": 2,
            "padding": 1,
            "groups": 2,
            "bias": False,
        },
    ),
    (
        "depthwise-same",
        (2, 4, 5, 5),
        {"in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": "same", "groups": 4},
    ),
    (
        "dilation2-asym",
        (1, 2, 8, 8),
        {
            "in_channels": 2,
            "out_channels": 3,
            "kernel_size": 3,
            "stride": (2, 1),
            "padding": (1, 2),
            "dilation": 2,
        },
    ),
    (
        "1x1-valid",
        (2, 3, 4, 5),
        {"in_channels": 3, "out_channels": 2, "kernel_size": 1, "padding": "valid"},
    ),
    (
        "even-same",
        (1, 2, 6, 6),
        {"in_channels": 2, "out_channels": 2, "kernel_size": 4, "padding": "same"},
    ),
]

MAXPOOL_CASES = [
    ("2", (2, 3, 6, 6), {"kernel_size": 2}),
    ("3s2p1", (2, 2, 7, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("2s1d2", (1, 2, 6, 7), {"kernel_size": 2, "stride": 1, "dilation": 2}),
    ("3s2-ceil", (1, 2, 6, 6), {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
]

AVGPOOL_CASES = [
    ("2", (2, 3, 6, 6), {"kernel_size": 2}),
    (
        "3s2p1-exclpad",
        (2, 2, 7, 7),
        {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False},
    ),
    ("3s2p1-ceil", (1, 2, 6, 6), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ("2-div3", (1, 2, 4, 4), {"kernel_size": 2, "divisor_override": 3}),
]

LINEAR_CASES = [
    ("2d", (4, 5), {"in_features": 5, "out_features": 3}),
    ("3d-nobias", (2, 3, 5), {"in_features": 5, "out_features": 4, "bias": False}),
    ("1d", (5,), {"in_features": 5, "out_features": 2}),
]


def _ids(cases):
    return [c[0] for c in cases]


# --------------------------------------------------------------------------
# Finite differences in float64 (reference backend)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name, shape, kw", CONV_CASES, ids=_ids(CONV_CASES))
def test_conv2d_gradcheck(name, shape, kw):
    with T.backend("reference", np.float64):
        layer = nn.Conv2d(**kw)
        assert layer.weight.dtype == np.float64
        x = _x64(*shape)
        gradcheck(lambda: layer(x), [x, *_params(layer)])


POOL_CASES = [(nn.MaxPool2d, *c) for c in MAXPOOL_CASES] + [
    (nn.AvgPool2d, *c) for c in AVGPOOL_CASES
]


@pytest.mark.parametrize(
    "cls, name, shape, kw", POOL_CASES, ids=[f"{c[0].__name__}-{c[1]}" for c in POOL_CASES]
)
def test_pool2d_gradcheck(cls, name, shape, kw):
    with T.backend("reference", np.float64):
        layer = cls(**kw)
        x = _x64(*shape)
        gradcheck(lambda: layer(x), [x])


@pytest.mark.parametrize("name, shape, kw", LINEAR_CASES, ids=_ids(LINEAR_CASES))
def test_linear_gradcheck(name, shape, kw):
    with T.backend("reference", np.float64):
        layer = nn.Linear(**kw)
        x = _x64(*shape)
        assert layer(x).shape == (*shape[:-1], kw["out_features"])
        gradcheck(lambda: layer(x), [x, *_params(layer)])


@pytest.mark.parametrize(
    "layer",
    [
        nn.ReLU(),
        nn.Tanh(),
        nn.Sigmoid(),
        nn.Softmax(1),
        nn.LogSoftmax(-1),
        nn.Flatten(),
        nn.Identity(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_activation_layers_gradcheck(layer):
    with T.backend("reference", np.float64):
        x = _x64(2, 3, 4, 2)
        gradcheck(lambda: layer(x), [x])


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(4, 3, 3, 2), (5, 3), (3, 3, 4)], ids=["2d", "1d", "1d-L"])
def test_batchnorm_gradcheck(training, shape):
    with T.backend("reference", np.float64):
        bn = nn.BatchNorm2d(3) if len(shape) == 4 else nn.BatchNorm1d(3)
        nn.init.normal_(bn.weight)
        nn.init.normal_(bn.bias)
        bn.running_mean[:] = RNG.standard_normal(3)
        bn.running_var[:] = RNG.random(3) + 0.5
        bn.train(training)
        x = _x64(*shape)
        gradcheck(lambda: bn(x), [x, bn.weight, bn.bias])


def test_dropout_gradcheck():
    with T.backend("reference", np.float64):
        drop = nn.Dropout(0.3)
        x = _x64(4, 5)

        def f():
            nn.manual_seed(7)  # the same mask on every evaluation
            return drop(x)

        gradcheck(f, [x])


def test_losses_gradcheck():
    with T.backend("reference", np.float64):
        logits = _x64(5, 4)
        labels = np.array([0, 3, 1, 3, 2])
        for reduction in ("mean", "sum"):
            ce = nn.CrossEntropyLoss(reduction)
            gradcheck(lambda ce=ce: ce(logits, labels), [logits])
        a, b = _x64(3, 4), _x64(3, 4)
        for cls in (nn.MSELoss, nn.L1Loss):
            for reduction in ("mean", "sum"):
                loss = cls(reduction)
                gradcheck(lambda loss=loss: loss(a, b), [a, b])
                gradcheck(lambda loss=loss: loss(a, b.data), [a])


def test_resnet_style_graph_gradcheck():
    """Layers composed with a skip connection and a concatenation."""
    with T.backend("reference", np.float64):
        conv1, conv2 = nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 3, 1)
        bn = nn.BatchNorm2d(2)
        x = _x64(2, 2, 4, 4)

        def f():
            h = bn(conv1(x)).relu() + x
            return T.cat([conv2(h), ops.max_pool2d(h, 3, 1, 1)], dim=1).tanh()

        gradcheck(f, [x, *_params(conv1), *_params(conv2), *_params(bn)])


# --------------------------------------------------------------------------
# Fast backend (float32) against the functional backward and torch
# --------------------------------------------------------------------------


def test_layers_call_the_functional_backward():
    """The layer gradients are exactly those of fastconv.functional's kernels."""
    x = _f32(2, 3, 8, 8)
    conv = nn.Conv2d(3, 4, 3, padding=1, stride=2)
    xt = Tensor(x, requires_grad=True)
    y = conv(xt)
    np.testing.assert_array_equal(
        y.data, fastconv.conv2d(x, conv.weight.data, conv.bias.data, 2, 1)
    )
    g = _f32(*y.shape, seed=1)
    y.backward(g)
    dx, dw, db = fastconv.conv2d_backward(g, x, conv.weight.data, 2, 1, 1, 1)
    np.testing.assert_array_equal(xt.grad, dx)
    np.testing.assert_array_equal(conv.weight.grad, dw)
    np.testing.assert_array_equal(conv.bias.grad, db)

    xt = Tensor(x, requires_grad=True)
    y = nn.MaxPool2d(2)(xt)
    p, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(y.data, p)
    g = _f32(*y.shape, seed=2)
    y.backward(g)
    np.testing.assert_array_equal(xt.grad, fastconv.max_pool2d_backward(g, idx, x.shape))

    lin = nn.Linear(8, 5)
    xt = Tensor(x, requires_grad=True)
    y = lin(xt)
    g = _f32(*y.shape, seed=3)
    y.backward(g)
    dx, dw, db = fastconv.linear_backward(g, x, lin.weight.data)
    np.testing.assert_array_equal(xt.grad, dx)
    np.testing.assert_array_equal(lin.weight.grad, dw)
    np.testing.assert_array_equal(lin.bias.grad, db)


@pytest.mark.parametrize(
    "stack, expect_op",
    [
        ("conv_relu", "conv2d+relu"),
        ("conv_relu_pool", "conv2d+relu+max_pool2d"),
        ("conv_relu_conv", "conv2d+relu"),
    ],
)
def test_sequential_fuses_conv_relu_and_pool(stack, expect_op):
    """Conv2d -> ReLU (-> MaxPool2d) inside a Sequential run as one op, with the
    same output and gradients, bitwise, as the modules one by one
    (fuse_relu=False); NaN in the input follows the same rules."""
    layers = {
        "conv_relu": lambda: [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()],
        "conv_relu_pool": lambda: [nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)],
        "conv_relu_conv": lambda: [nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.ReLU()],
    }[stack]
    nn.manual_seed(1)
    fused = nn.Sequential(*layers())
    plain = nn.Sequential(*layers())
    plain.load_state_dict(fused.state_dict())
    plain.fuse_relu = False
    x = _f32(2, 3, 9, 11)
    x[0, 1, 4, 4] = np.nan
    outs = []
    for model in (fused, plain):
        xt = Tensor(x, requires_grad=True)
        y = model(xt)
        outs.append((y, xt))
        y.backward(np.ones(y.shape, np.float32) + _f32(*y.shape, seed=5))
    (yf, xf), (yp, xp) = outs
    assert yf._op == expect_op and yp._op in ("relu", "max_pool2d")  # one fused node
    np.testing.assert_array_equal(yf.data, yp.data)
    np.testing.assert_array_equal(xf.grad, xp.grad)
    for a, b in zip(fused.parameters(), plain.parameters()):
        np.testing.assert_array_equal(a.grad, b.grad)
    with no_grad():  # the inference path of the fused op
        np.testing.assert_array_equal(fused(Tensor(x)).data, yp.data)


def test_conv2d_activation_relu_is_relu_of_conv2d():
    """The functional conv2d's fused ReLU: relu(conv2d(...)) for every algorithm,
    bitwise, NaN kept; the reference does the same; other values are refused."""
    x, w, b = _f32(2, 4, 9, 10), _f32(6, 4, 3, 3, seed=1), _f32(6, seed=2)
    x[1, 2, 3, 3] = np.nan
    for algo in fastconv._core.conv_algos():
        want = fastconv.relu(fastconv.conv2d(x, w, b, padding=1, algo=algo))
        got = fastconv.conv2d(x, w, b, padding=1, algo=algo, activation="relu")
        np.testing.assert_array_equal(got, want, err_msg=algo)
    ref = fastconv.reference
    np.testing.assert_array_equal(
        ref.conv2d(x, w, b, padding=1, activation="relu"), ref.relu(ref.conv2d(x, w, b, padding=1))
    )
    for bad in ("gelu", "RELU", 1):
        with pytest.raises(ValueError, match="activation must be None or 'relu'"):
            fastconv.conv2d(x, w, b, activation=bad)
        with pytest.raises(ValueError, match="activation must be None or 'relu'"):
            ref.conv2d(x, w, b, activation=bad)


def test_first_layer_skips_input_gradient():
    """An input that does not require grad gets no gradient (output_mask off)."""
    conv = nn.Conv2d(1, 2, 3)
    x = Tensor(_f32(1, 1, 5, 5))
    conv(x).sum().backward()
    assert x.grad is None and conv.weight.grad is not None


def _torch():
    return pytest.importorskip("torch")


def _weights_into_torch(torch, ours, theirs):
    """Copy our weight (and bias) into the torch layer; the (ours, theirs) parameter pairs."""
    params = [(ours.weight, theirs.weight)]
    if ours.bias is not None:
        params.append((ours.bias, theirs.bias))
    with torch.no_grad():
        for p, tp in params:
            tp.copy_(torch.tensor(p.data))
    return params


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("name, shape, kw", CONV_CASES, ids=_ids(CONV_CASES))
def test_conv2d_matches_torch(name, shape, kw):
    torch = _torch()
    ours, theirs = nn.Conv2d(**kw), torch.nn.Conv2d(**kw)
    torch_check(ours, theirs, _f32(*shape), params=_weights_into_torch(torch, ours, theirs))


@pytest.mark.parametrize(
    "cls, name, shape, kw", POOL_CASES, ids=[f"{c[0].__name__}-{c[1]}" for c in POOL_CASES]
)
def test_pool2d_matches_torch(cls, name, shape, kw):
    torch = _torch()
    torch_check(cls(**kw), getattr(torch.nn, cls.__name__)(**kw), _f32(*shape))


@pytest.mark.parametrize("name, shape, kw", LINEAR_CASES, ids=_ids(LINEAR_CASES))
def test_linear_matches_torch(name, shape, kw):
    torch = _torch()
    ours, theirs = nn.Linear(**kw), torch.nn.Linear(**kw)
    torch_check(ours, theirs, _f32(*shape), params=_weights_into_torch(torch, ours, theirs))


@pytest.mark.parametrize("name", ["ReLU", "Tanh", "Sigmoid", "Softmax", "LogSoftmax", "Flatten"])
def test_activations_match_torch(name):
    torch = _torch()
    ours = getattr(nn, name)(**({"dim": 1} if "Softmax" in name else {}))
    theirs = getattr(torch.nn, name)(**({"dim": 1} if "Softmax" in name else {}))
    torch_check(ours, theirs, _f32(3, 4, 5, 2))


@pytest.mark.parametrize("shape", [(8, 3, 5, 4), (16, 3)], ids=["2d", "1d"])
def test_batchnorm_matches_torch(shape):
    """Outputs, gradients and running statistics over several train steps, then eval."""
    torch = _torch()
    ours = nn.BatchNorm2d(3, momentum=0.2) if len(shape) == 4 else nn.BatchNorm1d(3, momentum=0.2)
    theirs = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(3, momentum=0.2)
    nn.init.normal_(ours.weight)
    nn.init.normal_(ours.bias)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.data))
        theirs.bias.copy_(torch.tensor(ours.bias.data))
    for step in range(3):
        x = _f32(*shape, seed=step) * 3 + 1
        ours.zero_grad()
        theirs.zero_grad()
        torch_check(
            ours, theirs, x, params=[(ours.weight, theirs.weight), (ours.bias, theirs.bias)]
        )
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-5)
    assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 3
    ours.eval()
    theirs.eval()
    torch_check(ours, theirs, _f32(*shape, seed=10), params=[(ours.weight, theirs.weight)])


def test_batchnorm_cumulative_momentum_matches_torch():
    torch = _torch()
    ours, theirs = nn.BatchNorm2d(2, momentum=None), torch.nn.BatchNorm2d(2, momentum=None)
    for step in range(4):
        x = _f32(4, 2, 3, 3, seed=step) + step
        with no_grad():
            ours(x)
        with torch.no_grad():
            theirs(torch.tensor(x))
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-5)


def test_batchnorm_rejects_bad_input():
    bn = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match="3 channels"):
        bn(Tensor(np.ones((2, 4, 3, 3), np.float32)))
    with pytest.raises(ValueError, match="more than 1 value"):
        bn(Tensor(np.ones((1, 3, 1, 1), np.float32)))
    bn.eval()
    assert bn(Tensor(np.ones((1, 3, 1, 1), np.float32))).shape == (1, 3, 1, 1)


# --------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------


def test_cross_entropy_matches_torch():
    torch = _torch()
    z = _f32(16, 10) * 4
    y = np.random.default_rng(0).integers(0, 10, 16)
    for reduction in ("mean", "sum"):
        zt = Tensor(z, requires_grad=True)
        loss = nn.CrossEntropyLoss(reduction)(zt, y)
        assert loss.shape == () and loss.dtype == np.float32
        loss.backward()
        tz = torch.tensor(z, requires_grad=True)
        tl = torch.nn.CrossEntropyLoss(reduction=reduction)(tz, torch.tensor(y))
        tl.backward()
        np.testing.assert_allclose(loss.item(), tl.item(), rtol=1e-5)
        np.testing.assert_allclose(zt.grad, tz.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_cross_entropy_is_stable_and_validates():
    z = Tensor(np.array([[1e4, 0.0, -1e4], [-3e4, 3e4, 0.0]], dtype=np.float32), requires_grad=True)
    loss = nn.CrossEntropyLoss()(z, np.array([0, 2]))
    assert np.isfinite(loss.item())
    np.testing.assert_allclose(loss.item(), (0 + 3e4) / 2, rtol=1e-6)
    loss.backward()
    assert np.all(np.isfinite(z.grad))
    np.testing.assert_allclose(z.grad, [[0, 0, 0], [0, 0.5, -0.5]], atol=1e-6)
    ce = nn.CrossEntropyLoss()
    good = Tensor(np.zeros((2, 3)))
    assert ce(good, np.array([0, 1], dtype=np.int32)).item() == pytest.approx(math.log(3))
    assert ce(good, [2, 1]).item() == pytest.approx(math.log(3))
    with pytest.raises(TypeError, match="integer class labels.*Tensor"):
        ce(good, Tensor([2.0, 1.0]))  # tensors hold floats: never labels
    with pytest.raises(IndexError, match="out of bounds"):
        ce(good, np.array([0, 3]))
    with pytest.raises(IndexError, match="out of bounds"):
        ce(good, np.array([-1, 0]))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        ce(good, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        ce(good, np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss("avg")(good, np.array([0, 1]))


@pytest.mark.parametrize("name", ["MSELoss", "L1Loss"])
def test_regression_losses_match_torch(name):
    torch = _torch()
    a, b = _f32(4, 3), _f32(4, 3, seed=1)
    at, bt = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    loss = getattr(nn, name)()(at, bt)
    loss.backward()
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    tl = getattr(torch.nn, name)()(ta, tb)
    tl.backward()
    np.testing.assert_allclose(loss.item(), tl.item(), rtol=1e-5)
    np.testing.assert_allclose(at.grad, ta.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bt.grad, tb.grad.numpy(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="shape"):
        getattr(nn, name)()(at, np.ones(3, np.float32))


# --------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------


def test_dropout_train_and_eval():
    drop = nn.Dropout(0.25)
    x = Tensor(np.ones((200, 100)), requires_grad=True)
    nn.manual_seed(0)
    y = drop(x)
    zero = y.data == 0
    assert abs(zero.mean() - 0.25) < 0.01
    np.testing.assert_allclose(y.data[~zero], 1 / 0.75, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)  # gradient = the scaled mask
    nn.manual_seed(0)
    np.testing.assert_array_equal(drop(x).data, y.data)  # reproducible
    assert not np.array_equal(drop(x).data, y.data)  # a new mask per call
    drop.eval()
    assert drop(x) is x
    drop.train()
    assert nn.Dropout(0.0)(x) is x
    assert np.all(nn.Dropout(1.0)(x).data == 0)
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


# --------------------------------------------------------------------------
# Constructor arguments: checked when the layer is built, not at forward
# --------------------------------------------------------------------------

BIG = r"\[1, 2147483647\]"

# (id, constructor, exception, the whole message as a regex)
BAD_LAYER_ARGS = [
    ("conv-kernel-0", lambda: nn.Conv2d(3, 4, 0), ValueError,
     rf"Conv2d: kernel_size must be in {BIG}, got \(0, 0\)"),
    ("conv-kernel-float", lambda: nn.Conv2d(3, 4, 2.0), TypeError,
     r"Conv2d: kernel_size must be an int, got float 2.0"),
    ("conv-kernel-bool", lambda: nn.Conv2d(3, 4, True), TypeError,
     r"Conv2d: kernel_size must be an int, got bool True"),
    ("conv-kernel-3d", lambda: nn.Conv2d(3, 4, (3, 3, 3)), ValueError,
     r"Conv2d: kernel_size must be an int or a pair of ints, got \(3, 3, 3\) of length 3"),
    ("conv-in-0", lambda: nn.Conv2d(0, 4, 3), ValueError,
     rf"Conv2d: in_channels must be in {BIG}, got 0"),
    ("conv-out-float", lambda: nn.Conv2d(3, 4.0, 3), TypeError,
     r"Conv2d: out_channels must be an int, got float 4.0"),
    ("conv-stride-neg", lambda: nn.Conv2d(3, 4, 3, stride=-1), ValueError,
     rf"Conv2d: stride must be in {BIG}, got \(-1, -1\)"),
    ("conv-stride-0-in-pair", lambda: nn.Conv2d(3, 4, 3, stride=[1, 0]), ValueError,
     rf"Conv2d: stride must be in {BIG}, got \(1, 0\)"),
    ("conv-padding-neg", lambda: nn.Conv2d(3, 4, 3, padding=-1), ValueError,
     r"Conv2d: padding must be in \[0, 2147483647\], got \(-1, -1\)"),
    ("conv-padding-str", lambda: nn.Conv2d(3, 4, 3, padding="full"), ValueError,
     r"Conv2d: padding must be an int, a pair of ints, 'same' or 'valid', got 'full'"),
    ("conv-same-strided", lambda: nn.Conv2d(3, 4, 3, stride=(1, 2), padding="same"), ValueError,
     r"Conv2d: padding='same' is not supported for strided convolutions, got stride \(1, 2\)"),
    ("conv-dilation-0", lambda: nn.Conv2d(3, 4, 3, dilation=0), ValueError,
     rf"Conv2d: dilation must be in {BIG}, got \(0, 0\)"),
    ("conv-groups-0", lambda: nn.Conv2d(3, 3, 3, groups=0), ValueError,
     rf"Conv2d: groups must be in {BIG}, got 0"),
    ("conv-groups-bool", lambda: nn.Conv2d(3, 3, 3, groups=True), TypeError,
     r"Conv2d: groups must be an int, got bool True"),
    ("conv-groups-in", lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError,
     r"Conv2d: groups=2 does not divide in_channels=3"),
    ("conv-groups-out", lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError,
     r"Conv2d: groups=4 does not divide out_channels=6"),
    ("conv-bias-int", lambda: nn.Conv2d(3, 4, 3, bias=1), TypeError,
     r"Conv2d: bias must be a bool, got int 1"),
    ("conv-algo", lambda: nn.Conv2d(3, 4, 3, algo="fft"), ValueError,
     r"Conv2d: algo must be one of 'auto', 'direct', 'im2col', 'implicit', got 'fft'"),
    ("maxpool-kernel-0", lambda: nn.MaxPool2d(0), ValueError,
     rf"MaxPool2d: kernel_size must be in {BIG}, got \(0, 0\)"),
    ("maxpool-stride-0", lambda: nn.MaxPool2d(2, stride=0), ValueError,
     rf"MaxPool2d: stride must be in {BIG}, got \(0, 0\)"),
    ("maxpool-padding-half", lambda: nn.MaxPool2d(3, padding=2), ValueError,
     r"MaxPool2d: padding \(2, 2\) must be at most half of kernel_size \(3, 3\)"),
    ("maxpool-dilation-0", lambda: nn.MaxPool2d(2, dilation=(0, 1)), ValueError,
     rf"MaxPool2d: dilation must be in {BIG}, got \(0, 1\)"),
    ("maxpool-ceil-int", lambda: nn.MaxPool2d(2, ceil_mode=1), TypeError,
     r"MaxPool2d: ceil_mode must be a bool, got int 1"),
    ("avgpool-kernel-float", lambda: nn.AvgPool2d(2.5), TypeError,
     r"AvgPool2d: kernel_size must be an int, got float 2.5"),
    ("avgpool-padding-neg", lambda: nn.AvgPool2d(2, padding=-1), ValueError,
     r"AvgPool2d: padding must be in \[0, 2147483647\], got \(-1, -1\)"),
    ("avgpool-divisor-0", lambda: nn.AvgPool2d(2, divisor_override=0), ValueError,
     r"AvgPool2d: divisor_override must not be 0"),
    ("linear-neg", lambda: nn.Linear(-1, 3), ValueError,
     r"Linear: in_features must be >= 0, got -1"),
    ("linear-float", lambda: nn.Linear(3, 2.0), TypeError,
     r"Linear: out_features must be an int, got float 2.0"),
    ("batchnorm-0", lambda: nn.BatchNorm2d(0), ValueError,
     r"BatchNorm2d: num_features must be >= 1, got 0"),
    ("batchnorm-eps-neg", lambda: nn.BatchNorm2d(10, eps=-1.0), ValueError,
     r"BatchNorm2d: eps must be finite and > 0, got -1.0"),
    ("batchnorm-eps-0", lambda: nn.BatchNorm1d(10, eps=0.0), ValueError,
     r"BatchNorm1d: eps must be finite and > 0, got 0.0"),
    ("batchnorm-eps-str", lambda: nn.BatchNorm2d(10, eps="1e-5"), TypeError,
     r"BatchNorm2d: eps must be a real number, got str '1e-5'"),
    ("dropout-high", lambda: nn.Dropout(1.5), ValueError, r"Dropout: p must be in \[0, 1\], got 1.5"),
    ("dropout-nan", lambda: nn.Dropout(float("nan")), ValueError,
     r"Dropout: p must be in \[0, 1\], got nan"),
    ("dropout-bool", lambda: nn.Dropout(True), TypeError,
     r"Dropout: p must be a real number, got bool True"),
    ("crossentropy-reduction", lambda: nn.CrossEntropyLoss("avg"), ValueError,
     r"CrossEntropyLoss: reduction must be one of 'mean', 'sum', 'none', got 'avg'"),
]  # fmt: skip


@pytest.mark.parametrize(
    "build, error, message", [c[1:] for c in BAD_LAYER_ARGS], ids=[c[0] for c in BAD_LAYER_ARGS]
)
def test_layer_constructors_reject_bad_arguments(build, error, message):
    with pytest.raises(error) as info:
        build()
    assert info.type is error  # not a subclass such as ZeroDivisionError
    assert re.fullmatch(message, str(info.value)), str(info.value)


# (layer, functional op, the same mistake as keyword arguments of both)
CONV_X, CONV_W = np.zeros((1, 3, 8, 8), np.float32), np.zeros((4, 3, 3, 3), np.float32)
SAME_MISTAKES = [
    ("Conv2d", "conv2d", {"stride": -1}),
    ("Conv2d", "conv2d", {"padding": (0, -2)}),
    ("Conv2d", "conv2d", {"dilation": 1.0}),
    ("Conv2d", "conv2d", {"groups": 0}),
    ("Conv2d", "conv2d", {"stride": (1, 1, 1)}),
    ("Conv2d", "conv2d", {"algo": "gemm"}),
    ("MaxPool2d", "max_pool2d", {"kernel_size": 0}),
    ("MaxPool2d", "max_pool2d", {"kernel_size": 2, "padding": 2}),
    ("MaxPool2d", "max_pool2d", {"kernel_size": 2, "stride": False}),
    ("AvgPool2d", "avg_pool2d", {"kernel_size": (2, -2)}),
    ("AvgPool2d", "avg_pool2d", {"kernel_size": 2, "divisor_override": 2.0}),
]


@pytest.mark.parametrize(
    "layer, op, kw",
    SAME_MISTAKES,
    ids=[f"{c[0]}-" + ",".join(f"{k}={v}" for k, v in c[2].items()) for c in SAME_MISTAKES],
)
def test_layer_errors_word_the_functional_errors(layer, op, kw):
    """A layer refuses what the functional op refuses, with the op's message under its name."""
    if op == "conv2d":
        call, build = partial(fastconv.conv2d, CONV_X, CONV_W), partial(nn.Conv2d, 3, 4, 3)
    else:
        call, build = partial(getattr(fastconv, op), CONV_X), getattr(nn, layer)
    with pytest.raises((TypeError, ValueError)) as functional_error:
        call(**kw)
    with pytest.raises(functional_error.type) as layer_error:
        build(**kw)
    assert str(layer_error.value) == str(functional_error.value).replace(f"{op}:", f"{layer}:", 1)


def test_layer_constructors_accept_what_pytorch_does():
    conv = nn.Conv2d(np.int64(4), 6, np.int32(3), stride=[1, np.int64(2)], groups=2, bias=np.True_)
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 2) and conv.groups == 2
    assert all(type(v) is int for v in (*conv.kernel_size, *conv.stride, conv.in_channels))
    assert nn.Conv2d(3, 4, 3, padding="same", stride=(1, 1)).padding == "same"
    assert nn.Conv2d(3, 4, 3, padding="valid", stride=2).padding == "valid"
    assert nn.MaxPool2d(3, None, 1).stride is None and nn.AvgPool2d(2, divisor_override=-3)
    assert nn.Linear(0, 3)(np.zeros((2, 0), np.float32)).shape == (2, 3)  # as torch: zero fan_in
    assert nn.Linear(3, 0)(np.zeros((2, 3), np.float32)).shape == (2, 0)
    assert nn.Dropout(0).p == 0 and nn.Dropout(1).p == 1
    assert nn.BatchNorm2d(1, eps=1e-3, momentum=None).momentum is None


# --------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------


def test_default_init_is_pytorch_like():
    nn.manual_seed(0)
    conv = nn.Conv2d(16, 64, 3)
    fan_in = 16 * 9
    bound = 1 / math.sqrt(fan_in)
    w = conv.weight.data
    assert w.dtype == np.float32 and w.shape == (64, 16, 3, 3)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.03 * bound
    assert np.abs(conv.bias.data).max() <= bound
    lin = nn.Linear(400, 300)
    assert np.abs(lin.weight.data).max() <= 1 / 20 and np.abs(lin.bias.data).max() <= 1 / 20
    assert conv.weight.requires_grad and isinstance(conv.weight, nn.Parameter)


def test_manual_seed_makes_construction_reproducible():
    nn.manual_seed(42)
    a = fastconv.models.keras_mnist_cnn()
    nn.manual_seed(42)
    b = fastconv.models.keras_mnist_cnn()
    nn.manual_seed(43)
    c = fastconv.models.keras_mnist_cnn()
    for (ka, pa), (kb, pb), (_, pc) in zip(
        a.named_parameters(), b.named_parameters(), c.named_parameters()
    ):
        assert ka == kb
        np.testing.assert_array_equal(pa.data, pb.data)
        assert not np.array_equal(pa.data, pc.data)


def test_init_functions():
    import fastconv.nn.init as init2
    from fastconv.nn import init

    assert init is init2 is nn.init
    nn.manual_seed(1)
    w = Tensor(np.empty((256, 128, 3, 3), np.float32))
    fan_in, fan_out = 128 * 9, 256 * 9
    init.kaiming_uniform_(w)
    assert np.abs(w.data).max() <= math.sqrt(6 / fan_in)
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert w.data.std() == pytest.approx(math.sqrt(2 / fan_out), rel=0.01)
    init.kaiming_normal_(w)
    assert w.data.std() == pytest.approx(math.sqrt(2 / fan_in), rel=0.01)
    init.xavier_uniform_(w, gain=2.0)
    b = 2 * math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(w.data).max() <= b and np.abs(w.data).max() > 0.99 * b
    init.xavier_normal_(w)
    assert w.data.std() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.01)
    init.uniform_(w, -3, -1)
    assert w.data.min() >= -3 and w.data.max() <= -1
    init.normal_(w, 5.0, 0.5)
    assert w.data.mean() == pytest.approx(5, abs=0.01)
    assert w.data.std() == pytest.approx(0.5, rel=0.01)
    init.zeros_(w)
    assert not w.data.any()
    init.ones_(w)
    assert np.all(w.data == 1)
    init.constant_(w, 0.3)
    assert np.all(w.data == np.float32(0.3))
    arr = np.empty((4, 5))
    init.xavier_uniform_(arr)  # plain arrays work too
    assert np.abs(arr).max() <= math.sqrt(6 / 9)
    with pytest.raises(ValueError):
        init.kaiming_uniform_(np.empty(5))
    g = np.random.default_rng(5)
    a1 = init.normal_(np.empty(3), generator=np.random.default_rng(5))
    np.testing.assert_array_equal(a1, g.standard_normal(3))


def test_calculate_gain_matches_torch():
    torch = _torch()
    for nl, p in [
        ("relu", None),
        ("tanh", None),
        ("linear", None),
        ("sigmoid", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("conv2d", None),
    ]:
        assert nn.init.calculate_gain(nl, p) == pytest.approx(torch.nn.init.calculate_gain(nl, p))


# --------------------------------------------------------------------------
# Module machinery
# --------------------------------------------------------------------------


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.scale = nn.Parameter(np.ones(1, np.float32))
        self.body = nn.Sequential(nn.ReLU(), nn.BatchNorm2d(2), nn.Flatten())
        self.head = nn.Linear(8, 3)
        self.shared = self.head  # registered twice, listed once

    def forward(self, x):
        return self.shared(self.body(self.conv(x) * self.scale))


def test_registration_order_and_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [
        "scale",
        "conv.weight",
        "conv.bias",
        "body.1.weight",
        "body.1.bias",
        "head.weight",
        "head.bias",
    ]
    assert len(list(net.parameters())) == 7
    assert [n for n, _ in net.named_children()] == ["conv", "body", "head"]
    assert [n for n, _ in net.named_modules()] == [
        "",
        "conv",
        "body",
        "body.0",
        "body.1",
        "body.2",
        "head",
    ]
    assert [n for n, _ in net.named_buffers()] == [
        "body.1.running_mean",
        "body.1.running_var",
        "body.1.num_batches_tracked",
    ]
    assert list(net.state_dict()) == names[:5] + [
        "body.1.running_mean",
        "body.1.running_var",
        "body.1.num_batches_tracked",
        "head.weight",
        "head.bias",
    ]
    assert net.num_parameters() == 1 + 18 + 2 + 2 + 2 + 24 + 3
    del net.scale
    assert "scale" not in dict(net.named_parameters())
    net.head.bias = None
    assert "head.bias" not in dict(net.named_parameters())
    with pytest.raises(TypeError):
        net.conv.weight = np.ones((2, 1, 3, 3))


def test_module_requires_init():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(2))

    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_train_eval_zero_grad_and_no_grad():
    net = Net()
    assert net.training and net.body[1].training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    x = _f32(4, 1, 4, 4)
    net(x).sum().backward()  # a NumPy array is accepted as input
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(not p.grad.any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    with no_grad():
        out = net(x)
    assert not out.requires_grad


def test_state_dict_roundtrip_and_errors(tmp_path):
    nn.manual_seed(0)
    a = Net()
    a.train()
    a(_f32(4, 1, 4, 4))  # moves the BatchNorm running statistics
    nn.manual_seed(1)
    b = Net()
    sd = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    sd["conv.bias"][0] = 123.0  # a copy: the model is untouched
    assert a.conv.bias.data[0] != 123.0
    sd = a.state_dict()
    weight_before = b.conv.weight.data
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert b.conv.weight.data is weight_before, "loaded in place"
    a.eval()
    b.eval()
    x = _f32(2, 1, 4, 4, seed=5)
    np.testing.assert_array_equal(a(x).data, b(x).data)

    bad = dict(sd)
    del bad["head.weight"]
    bad["extra.weight"] = np.ones(3)
    bad["conv.bias"] = np.ones(5)
    before = {k: v.copy() for k, v in b.state_dict().items()}
    with pytest.raises(RuntimeError) as err:
        b.load_state_dict(bad)
    msg = str(err.value)
    assert "Missing key(s): 'head.weight'" in msg
    assert "Unexpected key(s): 'extra.weight'" in msg
    assert "size mismatch for 'conv.bias'" in msg and "(5,)" in msg and "(2,)" in msg
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # nothing was modified
    partial = {k: v for k, v in sd.items() if k != "head.weight"}
    partial["extra"] = np.ones(1)
    result = b.load_state_dict(partial, strict=False)
    assert result.missing_keys == ["head.weight"] and result.unexpected_keys == ["extra"]

    # save / load through .npz (with and without the extension)
    nn.manual_seed(2)
    c = Net()
    a.save(tmp_path / "net.npz")
    c.load(tmp_path / "net.npz")
    a.save(str(tmp_path / "noext"))
    nn.manual_seed(3)
    d = Net().load(str(tmp_path / "noext"))
    for m in (c, d):
        for k, v in a.state_dict().items():
            np.testing.assert_array_equal(m.state_dict()[k], v)
            assert m.state_dict()[k].dtype == v.dtype


def test_sequential_container():
    seq = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert len(seq) == 3 and isinstance(seq[0], nn.Linear) and isinstance(seq[-1], nn.Linear)
    assert len(seq[1:]) == 2
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    seq.append(nn.Softmax(dim=1))
    assert len(seq) == 4 and seq(np.ones((5, 4), np.float32)).shape == (5, 2)
    from collections import OrderedDict

    named = nn.Sequential(OrderedDict(fc=nn.Linear(2, 2), act=nn.Tanh()))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias"]
    assert "(fc): Linear(in_features=2, out_features=2, bias=True)" in repr(named)


def test_to_float64_runs_on_reference():
    nn.manual_seed(0)
    net = Net()
    x = _f32(2, 1, 4, 4)
    net.eval()
    y32 = net(x).data
    net.double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.body[1].running_mean.dtype == np.float64
    assert net.body[1].num_batches_tracked.dtype == np.int64
    y64 = net(x.astype(np.float64)).data  # no switch: float64 inputs run on the reference
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y64, y32, rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match=r"x is float32 but weight is float64.*\.double\(\)"):
        net(x)  # a float32 input to a float64 model: refused, not cast
    assert net.summary((1, 4, 4)).output_shape == (1, 3)  # summary feeds the model's dtype
    with pytest.raises(TypeError, match="float16"):
        net.to(np.float16)
    net.float()
    assert net(x).dtype == np.float32


def _small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, groups=2),
        nn.AvgPool2d(2, ceil_mode=True),
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Linear(4, 3),
    )


def test_double_model_trains_in_float64():
    """model.double() runs forward, backward and the optimizer in float64 (on the reference).

    The same steps in float32 on the fast kernels stay close to it, and the
    float64 gradient agrees with central differences of the float64 loss.
    """
    from fastconv import optim

    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 1, 8, 8))
    y = rng.integers(0, 3, 6)
    nn.manual_seed(0)
    m32 = _small_cnn()
    m64 = _small_cnn().double()
    m64.load_state_dict(m32.state_dict())
    ce = nn.CrossEntropyLoss()
    opts = [optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (m32, m64)]
    for _step in range(3):
        losses = []
        for m, opt, xb in ((m32, opts[0], x.astype(np.float32)), (m64, opts[1], x)):
            nn.manual_seed(5)  # the same dropout masks
            loss = ce(m(xb), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss)
        assert losses[0].dtype == np.float32 and losses[1].dtype == np.float64
        assert losses[1].item() == pytest.approx(losses[0].item(), rel=1e-4)
    for p in m64.parameters():
        assert p.dtype == np.float64 and p.grad.dtype == np.float64
    for b in m64.buffers():
        assert b.dtype in (np.float64, np.int64)
    for (k, a), b in zip(m32.state_dict().items(), m64.state_dict().values()):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4, err_msg=k)

    # One gradient of the float64 model against central differences.
    m64.eval()
    w = m64[0].weight
    m64.zero_grad()
    ce(m64(x), y).backward()
    eps, (i, j) = 1e-6, (1, 2)
    old = w.data[0, 0, i, j]
    w.data[0, 0, i, j] = old + eps
    up = ce(m64(x), y).item()
    w.data[0, 0, i, j] = old - eps
    down = ce(m64(x), y).item()
    w.data[0, 0, i, j] = old
    assert w.grad[0, 0, i, j] == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(
    "labels",
    [np.array([0.0, 2.0], np.float32), np.array([0.0, 2.0]), np.array([True, False])],
    ids=["float32", "float64", "bool"],
)
def test_cross_entropy_refuses_non_integer_class_indices(labels):
    """As PyTorch: class indices must be integers; whole-valued floats are not cast."""
    logits = Tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    with pytest.raises(
        TypeError, match=rf"integer class labels.*{labels.dtype}.*astype\(np\.int64\)"
    ):
        nn.CrossEntropyLoss()(logits, labels)
    assert nn.CrossEntropyLoss()(logits, labels.astype(np.int64)).item() == pytest.approx(
        math.log(3)
    )


def test_summary_is_a_string_with_counts(capsys):
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 10),
    )
    net.train()
    rm = net[1].running_mean.copy()
    s = net.summary((1, 8, 8))
    assert isinstance(s, str) and isinstance(s, nn.Summary)
    assert s.total_params == 40 + 8 + 1450 == s.trainable_params
    assert s.non_trainable_params == 0
    assert "Total params: 1,498" in s and "Trainable params: 1,498" in s
    assert [r[1] for r in s.rows] == [(1, 4, 6, 6)] * 4 + [(1, 144), (1, 10)]
    assert [r[2] for r in s.rows] == [40, 8, 0, 0, 0, 1450]
    assert s.rows[0][0] == "0 (Conv2d)"
    assert s.output_shape == (1, 10)
    assert all(m.training for m in net.modules()), "modes restored"
    np.testing.assert_array_equal(net[1].running_mean, rm)  # statistics untouched
    assert "forward" not in net[0].__dict__
    assert capsys.readouterr().out == ""
    net[5].weight.requires_grad = False
    s = net.summary((1, 8, 8), batch_size=3, verbose=True)
    assert s.rows[-1][1] == (3, 10)
    assert s.trainable_params == 1498 - 1440 and s.non_trainable_params == 1440
    assert "Non-trainable params: 1,440" in capsys.readouterr().out
    single = nn.Linear(3, 2).summary((3,))
    assert single.total_params == 8 and len(single.rows) == 1
    assert nn.Linear(3, 2).summary(3).output_shape == (1, 2)
