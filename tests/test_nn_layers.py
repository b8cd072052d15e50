"""The layers of issue 13: activations, norms, adaptive pools, unpooling, padding modes,
transposed convolution, and BatchNorm's options.

Every layer is checked twice (as test_nn.py does for the older ones):

* float64 on the reference kernels against central finite differences
  (:func:`test_autograd.gradcheck`), for the input and every parameter;
* float32 on fastconv's kernels against ``torch.nn`` holding the same
  parameters: outputs, input gradients and parameter gradients
  (:func:`layer_checks.torch_check`).

The functional ``conv_transpose2d`` and the adaptive pools are compared with
the reference and with torch directly, and ``conv_transpose2d`` with the
``conv2d_backward`` it is defined by.
"""

from __future__ import annotations

import numpy as np
import pytest
from layer_checks import f32, params_from_torch, torch_check
from test_autograd import gradcheck

from fastconv import Tensor, functional, nn, no_grad, reference
from fastconv import tensor as T

RNG = np.random.default_rng(13)


def _x64(*shape):
    return Tensor(RNG.standard_normal(shape), requires_grad=True, dtype=np.float64)


def _torch():
    return pytest.importorskip("torch")


def _randomize(layer):
    """Non-trivial parameters (norm layers start at ones and zeros)."""
    for p in layer.parameters():
        p.data[...] = RNG.standard_normal(p.shape)
    return layer


# (name, constructor, its kwargs, input shape); the same kwargs build torch's layer.
CASES = [
    ("LeakyReLU", nn.LeakyReLU, {}, (2, 3, 4, 5)),
    ("LeakyReLU-0.3", nn.LeakyReLU, {"negative_slope": 0.3}, (3, 7)),
    ("GELU", nn.GELU, {}, (2, 3, 4, 5)),
    ("GELU-tanh", nn.GELU, {"approximate": "tanh"}, (2, 3, 4, 5)),
    ("SiLU", nn.SiLU, {}, (2, 3, 4, 5)),
    ("ELU", nn.ELU, {}, (2, 3, 4, 5)),
    ("ELU-alpha", nn.ELU, {"alpha": 0.5}, (4, 6)),
    ("LayerNorm-last", nn.LayerNorm, {"normalized_shape": 5}, (2, 3, 5)),
    ("LayerNorm-2d", nn.LayerNorm, {"normalized_shape": (4, 5)}, (2, 3, 4, 5)),
    ("LayerNorm-nobias", nn.LayerNorm, {"normalized_shape": [6], "bias": False}, (4, 6)),
    (
        "LayerNorm-noaffine",
        nn.LayerNorm,
        {"normalized_shape": 6, "elementwise_affine": False},
        (4, 6),
    ),
    ("GroupNorm", nn.GroupNorm, {"num_groups": 2, "num_channels": 6}, (3, 6, 4, 3)),
    ("GroupNorm-1group", nn.GroupNorm, {"num_groups": 1, "num_channels": 4}, (2, 4, 5)),
    ("GroupNorm-instance", nn.GroupNorm, {"num_groups": 3, "num_channels": 3}, (2, 3, 4, 4)),
    (
        "GroupNorm-noaffine",
        nn.GroupNorm,
        {"num_groups": 2, "num_channels": 4, "affine": False},
        (2, 4, 3, 3),
    ),
    ("GroupNorm-nobias", nn.GroupNorm, {"num_groups": 2, "num_channels": 4, "bias": False}, (2, 4, 6)),
    ("AdaptiveAvgPool2d-global", nn.AdaptiveAvgPool2d, {"output_size": 1}, (2, 3, 5, 7)),
    ("AdaptiveAvgPool2d-3x4", nn.AdaptiveAvgPool2d, {"output_size": (3, 4)}, (2, 3, 7, 9)),
    ("AdaptiveAvgPool2d-divides", nn.AdaptiveAvgPool2d, {"output_size": 2}, (2, 3, 6, 4)),
    ("AdaptiveAvgPool2d-None", nn.AdaptiveAvgPool2d, {"output_size": (None, 3)}, (1, 2, 5, 7)),
    ("AdaptiveAvgPool2d-up", nn.AdaptiveAvgPool2d, {"output_size": (6, 5)}, (1, 2, 4, 3)),
    ("AdaptiveAvgPool2d-3d", nn.AdaptiveAvgPool2d, {"output_size": (2, 3)}, (3, 5, 7)),
    ("AdaptiveMaxPool2d-global", nn.AdaptiveMaxPool2d, {"output_size": 1}, (2, 3, 5, 7)),
    ("AdaptiveMaxPool2d-3x4", nn.AdaptiveMaxPool2d, {"output_size": (3, 4)}, (2, 3, 7, 9)),
    ("AdaptiveMaxPool2d-divides", nn.AdaptiveMaxPool2d, {"output_size": 2}, (2, 3, 6, 4)),
    ("AdaptiveMaxPool2d-None", nn.AdaptiveMaxPool2d, {"output_size": (4, None)}, (1, 2, 5, 7)),
    (
        "Conv2d-reflect",
        nn.Conv2d,
        {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1, "padding_mode": "reflect"},
        (2, 2, 5, 6),
    ),
    (
        "Conv2d-replicate-same",
        nn.Conv2d,
        {"in_channels": 2, "out_channels": 2, "kernel_size": (2, 3), "padding": "same", "padding_mode": "replicate"},
        (2, 2, 4, 5),
    ),
    (
        "Conv2d-circular-strided",
        nn.Conv2d,
        {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": (2, 1), "padding_mode": "circular", "groups": 2},
        (1, 2, 6, 5),
    ),
    (
        "Conv2d-reflect-dilated",
        nn.Conv2d,
        {"in_channels": 1, "out_channels": 2, "kernel_size": 2, "padding": 2, "dilation": 2, "padding_mode": "reflect", "bias": False},
        (2, 1, 5, 5),
    ),
    ("ConvTranspose2d", nn.ConvTranspose2d, {"in_channels": 3, "out_channels": 2, "kernel_size": 3}, (2, 3, 4, 5)),
    (
        "ConvTranspose2d-stride2-outpad",
        nn.ConvTranspose2d,
        {"in_channels": 4, "out_channels": 6, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1, "groups": 2},
        (2, 4, 3, 4),
    ),
    (
        "ConvTranspose2d-asym-dilation-nobias",
        nn.ConvTranspose2d,
        {"in_channels": 2, "out_channels": 3, "kernel_size": (2, 3), "stride": (1, 3), "padding": (1, 0), "dilation": (2, 1), "bias": False},
        (1, 2, 4, 3),
    ),
    (
        "ConvTranspose2d-outpad-below-dilation",
        nn.ConvTranspose2d,
        {"in_channels": 2, "out_channels": 2, "kernel_size": 3, "output_padding": 1, "dilation": 2},
        (2, 2, 3, 3),
    ),
    ("BatchNorm2d-nobias", nn.BatchNorm2d, {"num_features": 3, "bias": False}, (4, 3, 2, 3)),
    ("BatchNorm2d-untracked", nn.BatchNorm2d, {"num_features": 3, "track_running_stats": False}, (4, 3, 2, 2)),
    ("BatchNorm1d-noaffine", nn.BatchNorm1d, {"num_features": 4, "affine": False}, (5, 4)),
]  # fmt: skip


@pytest.mark.parametrize("name, cls, kw, shape", CASES, ids=[c[0] for c in CASES])
def test_layer_gradcheck(name, cls, kw, shape):
    with T.backend("reference", np.float64):
        layer = _randomize(cls(**kw))
        x = _x64(*shape)
        gradcheck(lambda: layer(x), [x, *layer.parameters()])


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name, cls, kw, shape", CASES, ids=[c[0] for c in CASES])
def test_layer_matches_torch(name, cls, kw, shape, training):
    torch = _torch()
    theirs = getattr(torch.nn, cls.__name__)(**kw)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape))
    ours = cls(**kw)
    params_from_torch(ours, theirs)
    ours.train(training)
    theirs.train(training)
    x = f32(*shape, seed=len(name)) * 2
    torch_check(ours, theirs, x)
    for k, b in ours.named_buffers():  # running statistics after the step
        np.testing.assert_allclose(b, theirs.get_buffer(k).numpy(), rtol=1e-5, atol=1e-6)


def test_gelu_erf_is_exact_in_float64():
    torch = _torch()
    x = np.linspace(-6, 6, 101)
    y = nn.GELU()(Tensor(x)).data
    np.testing.assert_allclose(y, torch.nn.functional.gelu(torch.tensor(x)).numpy(), rtol=1e-14)


# --------------------------------------------------------------------------
# Max pooling with indices and unpooling
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, shape",
    [
        ({"kernel_size": 2}, (2, 3, 6, 6)),
        ({"kernel_size": 3, "stride": 2, "padding": 1}, (2, 2, 7, 6)),
        ({"kernel_size": 3, "stride": 1}, (1, 2, 5, 5)),  # overlapping windows
        ({"kernel_size": 2}, (3, 5, 4)),  # unbatched
    ],
)
def test_max_pool_indices_and_unpool_match_torch(kw, shape):
    torch = _torch()
    x = f32(*shape)
    pool, unpool = nn.MaxPool2d(**kw, return_indices=True), nn.MaxUnpool2d(**kw)
    tpool, tunpool = torch.nn.MaxPool2d(**kw, return_indices=True), torch.nn.MaxUnpool2d(**kw)
    xt = Tensor(x, requires_grad=True)
    y, idx = pool(xt)
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = tpool(tx)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, tidx.numpy())
    np.testing.assert_array_equal(y.data, ty.detach().numpy())
    size = x.shape[-2:]
    u = unpool(y, idx, output_size=size)
    tu = tunpool(ty, tidx, output_size=size)
    np.testing.assert_array_equal(u.data, tu.detach().numpy())
    g = f32(*u.shape, seed=5)
    u.backward(g)
    tu.backward(torch.tensor(g))
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_unpool_gradcheck_and_errors():
    with T.backend("reference", np.float64):
        x = _x64(2, 3, 6, 5)
        y, idx = nn.MaxPool2d(2, return_indices=True)(x)
        y = Tensor(y.data, requires_grad=True)
        unpool = nn.MaxUnpool2d(2)
        gradcheck(lambda: unpool(y, idx, output_size=(6, 5)), [y])
        with pytest.raises(ValueError, match="must lie in"):
            unpool(y, idx)  # the default size, (6, 4), is too small for these indices
        assert unpool(y[:, :, :, :2], idx[:, :, :, :2] % 4).shape == (2, 3, 6, 4)
        with pytest.raises(ValueError, match="within a stride"):
            unpool(y, idx, output_size=(8, 4))
        with pytest.raises(TypeError, match="integer array"):
            unpool(y, idx.astype(np.float64))
        with pytest.raises(ValueError, match="indices shape"):
            unpool(y, idx[:, :2])


def test_adaptive_max_pool_return_indices():
    torch = _torch()
    x = f32(2, 3, 7, 9)
    y, idx = nn.AdaptiveMaxPool2d((3, 4), return_indices=True)(x)
    ty, tidx = torch.nn.AdaptiveMaxPool2d((3, 4), return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(idx, tidx.numpy())
    np.testing.assert_array_equal(y.data, ty.numpy())


# --------------------------------------------------------------------------
# The functional and reference kernels
# --------------------------------------------------------------------------

CONVT_CASES = [
    # N, C, H, W, K, groups, (R, S), stride, padding, output_padding, dilation
    (2, 4, 5, 6, 6, 2, (3, 3), 2, 1, 1, 1),
    (1, 2, 4, 4, 3, 1, (2, 3), (2, 3), (0, 1), (1, 2), 1),
    (2, 3, 3, 3, 2, 1, (3, 3), 1, 0, 1, 2),
    (1, 2, 6, 5, 4, 2, (1, 1), 3, 0, 2, 1),
    (2, 2, 3, 4, 2, 1, (3, 2), 2, 2, 0, 3),
    (3, 16, 8, 8, 8, 1, (4, 4), 2, 1, 0, 1),
]


@pytest.mark.parametrize("case", CONVT_CASES)
def test_conv_transpose2d_functional_and_reference(case):
    torch = _torch()
    N, C, H, W, K, G, RS, st, pad, opad, dil = case
    x = f32(N, C, H, W)
    w = f32(C, K // G, *RS, seed=1)
    b = f32(K, seed=2)
    args = (st, pad, opad, G, dil)
    expect = torch.nn.functional.conv_transpose2d(
        torch.tensor(x), torch.tensor(w), torch.tensor(b), *args
    ).numpy()
    np.testing.assert_allclose(
        functional.conv_transpose2d(x, w, b, *args), expect, rtol=1e-5, atol=1e-5
    )
    ref = reference.conv_transpose2d(
        x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), *args
    )
    np.testing.assert_allclose(ref, expect, rtol=1e-5, atol=1e-5)
    # The definition: the input gradient of the convolution whose output x is.
    y = functional.conv_transpose2d(x, w, None, *args)
    P, Q = reference.conv2d_output_hw(y.shape[2:], RS, st, pad, dil)
    if (P, Q) == (H, W):
        gi = functional.conv2d_backward(
            x, np.zeros(y.shape, np.float32), w, st, pad, dil, G, output_mask=(True, False, False)
        )[0]
        np.testing.assert_array_equal(y, gi)


def test_conv_transpose2d_errors():
    x, w = f32(1, 2, 3, 3), f32(2, 2, 3, 3)
    with pytest.raises(ValueError, match="output_padding"):
        functional.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="output_padding"):
        reference.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="not positive|must be positive"):
        functional.conv_transpose2d(x, w, padding=3)
    with pytest.raises(ValueError):
        functional.conv_transpose2d(f32(1, 3, 3, 3), w)
    with pytest.raises(TypeError):
        functional.conv_transpose2d(x.astype(np.float64), w)
    with pytest.raises(TypeError):
        functional.conv_transpose2d(x, w, f32(2).astype(np.float64))


@pytest.mark.parametrize("out", [1, 2, (3, 4), (None, 2), (5, 7), (0, 2)])
def test_adaptive_pools_functional_reference_torch(out):
    torch = _torch()
    x = f32(2, 3, 6, 7)
    tx = torch.tensor(x)
    avg = torch.nn.functional.adaptive_avg_pool2d(tx, out).numpy()
    mx, midx = torch.nn.functional.adaptive_max_pool2d(tx, out, return_indices=True)
    for F in (functional, reference):
        np.testing.assert_allclose(F.adaptive_avg_pool2d(x, out), avg, rtol=1e-6, atol=1e-6)
        y, idx = F.adaptive_max_pool2d(x, out, return_indices=True)
        np.testing.assert_array_equal(y, mx.numpy())
        np.testing.assert_array_equal(idx, midx.numpy())
    g = f32(*avg.shape, seed=3)
    np.testing.assert_allclose(
        functional.adaptive_avg_pool2d_backward(g, x.shape),
        reference.adaptive_avg_pool2d_backward(g, x.shape),
        rtol=1e-6,
        atol=1e-7,
    )


def test_adaptive_max_pool_ties_and_nan_follow_torch():
    torch = _torch()
    x = np.zeros((1, 1, 5, 5), np.float32)  # all ties: the first of each window
    x[0, 0, 3, 1] = np.nan
    x[0, 0, 4, 4] = np.nan  # two NaNs in one window: the last
    x[0, 0, 4, 2] = np.nan
    _, tidx = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), 3, return_indices=True)
    for F in (functional, reference):
        _, idx = F.adaptive_max_pool2d(x, 3, return_indices=True)
        np.testing.assert_array_equal(idx, tidx.numpy())


# --------------------------------------------------------------------------
# BatchNorm's options
# --------------------------------------------------------------------------


def test_batchnorm_untracked_uses_batch_stats_in_eval():
    bn = nn.BatchNorm2d(3, track_running_stats=False).eval()
    assert bn.running_mean is None and list(bn.state_dict()) == ["weight", "bias"]
    x = f32(4, 3, 2, 2) * 3 + 2
    y = bn(x).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert "track_running_stats=False" in repr(bn)


def test_batchnorm_bias_false_has_weight_only():
    bn = nn.BatchNorm2d(3, bias=False)
    assert [k for k, _ in bn.named_parameters()] == ["weight"] and bn.bias is None
    assert "bias=False" in repr(bn)
    assert nn.BatchNorm2d(3, affine=False, bias=False).weight is None


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_empty_batch_matches_torch(momentum):
    torch = _torch()
    ours, theirs = nn.BatchNorm2d(3, momentum=momentum), torch.nn.BatchNorm2d(3, momentum=momentum)
    ours.running_mean[:] = 2
    with torch.no_grad():
        theirs.running_mean.fill_(2)
    x = Tensor(np.zeros((0, 3, 4, 4), np.float32), requires_grad=True)
    y = ours(x)
    ty = theirs(torch.zeros(0, 3, 4, 4))
    assert y.shape == tuple(ty.shape) == (0, 3, 4, 4)
    np.testing.assert_array_equal(ours.running_mean, theirs.running_mean.numpy())
    np.testing.assert_array_equal(ours.running_var, theirs.running_var.numpy())
    assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 1
    y.backward(np.zeros(y.shape, np.float32))
    assert x.grad.shape == x.shape
    np.testing.assert_array_equal(ours.weight.grad, np.zeros(3, np.float32))
    ours.eval()
    assert ours(x).shape == (0, 3, 4, 4)


@pytest.mark.parametrize("eps", [-1.0, 0.0, float("nan"), float("inf")])
@pytest.mark.parametrize("cls", [nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm])
def test_norm_eps_must_be_positive(cls, eps):
    args = (2, 4) if cls is nn.GroupNorm else (4,)
    with pytest.raises(ValueError, match="eps must be finite and > 0"):
        cls(*args, eps=eps)


# --------------------------------------------------------------------------
# Constructor errors, reprs
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: nn.Conv2d(2, 2, 3, padding_mode="mirror"), ValueError, "padding_mode must be one of"),
        (lambda: nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect"), ValueError, "zeros"),
        (lambda: nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2), ValueError, "output_padding"),
        (lambda: nn.ConvTranspose2d(3, 2, 3, groups=2), ValueError, "groups=2 does not divide"),
        (lambda: nn.GroupNorm(4, 6), ValueError, "divisible by num_groups"),
        (lambda: nn.GroupNorm(2.0, 6), TypeError, "num_groups must be an int"),
        (lambda: nn.LayerNorm("5"), TypeError, "normalized_shape"),
        (lambda: nn.GELU("fast"), ValueError, "approximate must be one of"),
        (lambda: nn.LeakyReLU(float("nan")), ValueError, "negative_slope must be finite"),
        (lambda: nn.ReLU(inplace=1), TypeError, "inplace must be a bool"),
        (lambda: nn.AdaptiveAvgPool2d((1, 2, 3)), ValueError, "output_size must be an int or a pair"),
        (lambda: nn.AdaptiveMaxPool2d(-1), ValueError, "output_size must be >= 0"),
        (lambda: nn.AdaptiveMaxPool2d(2.5), TypeError, "output_size must be an int"),
        (lambda: nn.MaxPool2d(2, return_indices="yes"), TypeError, "return_indices must be a bool"),
        (lambda: nn.MaxUnpool2d(0), ValueError, "kernel_size must be in"),
    ],
)  # fmt: skip
def test_new_constructors_reject_bad_arguments(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_reprs_are_torchs():
    torch = _torch()
    for ours, theirs in [
        (nn.LeakyReLU(), torch.nn.LeakyReLU()),
        (nn.ELU(alpha=0.5), torch.nn.ELU(alpha=0.5)),
        (nn.GELU("tanh"), torch.nn.GELU("tanh")),
        (nn.SiLU(), torch.nn.SiLU()),
        (nn.ReLU(inplace=True), torch.nn.ReLU(inplace=True)),
        (nn.LayerNorm(3), torch.nn.LayerNorm(3)),
        (nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4)),
        (nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)),
        (nn.AdaptiveAvgPool2d((None, 2)), torch.nn.AdaptiveAvgPool2d((None, 2))),
        (nn.MaxUnpool2d(2), torch.nn.MaxUnpool2d(2)),
        (nn.Flatten(), torch.nn.Flatten()),
        (nn.Dropout(), torch.nn.Dropout()),
    ]:
        assert repr(ours) == repr(theirs)


def test_conv_transpose2d_output_size_and_init():
    torch = _torch()
    ours = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1)
    theirs = torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1)
    params_from_torch(ours, theirs)
    x = f32(1, 4, 5, 5)
    for size in [(9, 9), (10, 10), (1, 2, 10, 9)]:
        y = ours(x, output_size=size)
        ty = theirs(torch.tensor(x), output_size=list(size))
        np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="valid sizes"):
        ours(x, output_size=(11, 9))
    # kaiming_uniform_(a=sqrt(5)) with fan_in = out_channels/groups * kh * kw, as torch's
    nn.manual_seed(0)
    w = nn.ConvTranspose2d(64, 8, 3).weight.data
    bound = 1 / np.sqrt(8 * 9)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound


def test_new_layers_under_no_grad_and_float64():
    x = f32(2, 4, 6, 6)
    for layer in [
        nn.GELU(),
        nn.GroupNorm(2, 4),
        nn.AdaptiveAvgPool2d(3),
        nn.ConvTranspose2d(4, 2, 2),
    ]:
        with no_grad():
            y = layer(Tensor(x, requires_grad=True))
        assert not y.requires_grad
        layer.double()
        assert layer(x.astype(np.float64)).dtype == np.float64
