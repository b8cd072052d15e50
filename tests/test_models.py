"""fastconv.models: the lecture's parameter counts, torch parity, learning, step overhead.

* Every model's summary prints the counts of /work/shared/reference/cnn-facts.md
  (93,322; 407,050; LeNet-5 61,706; AlexNet 62,378,344) and the ResNet block
  and inception module the hand-computed ones (and torch's, when available).
* The ResNet block and the inception module agree with the same networks in
  torch (forward, backward, BatchNorm statistics) given the same weights.
* A tiny CNN learns a synthetic image task to >= 95% test accuracy (in about
  a second), and the profiler sees every op of a Keras-CNN training step.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from layer_checks import f32 as _f32
from layer_checks import torch_check

from fastconv import Tensor, models, nn, no_grad, optim, profiler

# --------------------------------------------------------------------------
# Parameter counts and output shapes
# --------------------------------------------------------------------------

COUNTS = [
    ("keras_mnist_cnn", models.keras_mnist_cnn, (1, 28, 28), 93_322, (1, 10), "93,322"),
    ("mlp_mnist", models.mlp_mnist, (1, 28, 28), 407_050, (1, 10), "407,050"),
    ("lenet5", models.lenet5, (1, 32, 32), 61_706, (1, 10), "61,706"),
    ("lenet5-28", lambda: models.lenet5(input_size=28), (1, 28, 28), 61_706, (1, 10), "61,706"),
    # conv1 3x3 64*64*9, conv2 the same, two BatchNorms 2*64 each, identity shortcut
    (
        "block-64",
        lambda: models.resnet_basic_block(64, 64),
        (64, 8, 8),
        2 * 36_864 + 2 * 128,
        (1, 64, 8, 8),
        "73,984",
    ),
    # 64*128*9 + 128*128*9 + 4*128 (BN) + 64*128 (1x1 projection) + 2*128 (its BN)
    (
        "block-64-128-s2",
        lambda: models.resnet_basic_block(64, 128, 2),
        (64, 8, 8),
        73_728 + 147_456 + 512 + 8_192 + 256,
        (1, 128, 4, 4),
        "230,144",
    ),
    # GoogLeNet 3a: 192*64+64, 192*96+96, 96*128*9+128, 192*16+16, 16*32*25+32, 192*32+32
    (
        "inception-3a",
        lambda: models.inception_module(192, 64, 96, 128, 16, 32, 32),
        (192, 7, 7),
        12_352 + 18_528 + 110_720 + 3_088 + 12_832 + 6_176,
        (1, 256, 7, 7),
        "163,696",
    ),
]


@pytest.mark.parametrize(
    "name, make, shape, total, out_shape, text", COUNTS, ids=[c[0] for c in COUNTS]
)
def test_summary_counts(name, make, shape, total, out_shape, text):
    model = make()
    s = model.summary(shape)
    assert s.total_params == total == s.trainable_params
    assert f"Total params: {text}" in s
    assert s.output_shape == out_shape
    assert sum(r[2] for r in s.rows) == total


def test_keras_cnn_layer_table():
    """The per-layer rows of cnn-facts.md (channels first)."""
    s = models.keras_mnist_cnn().summary((1, 28, 28))
    conv_dense = [(r[1][1:], r[2]) for r in s.rows if r[2]]
    assert conv_dense == [
        ((32, 26, 26), 320),
        ((64, 11, 11), 18_496),
        ((64, 3, 3), 36_928),
        ((64,), 36_928),
        ((10,), 650),
    ]
    pools = [r[1][1:] for r in s.rows if "MaxPool2d" in r[0]]
    assert pools == [(32, 13, 13), (64, 5, 5)]
    assert [r[1] for r in s.rows if "Flatten" in r[0]] == [(1, 576)]


def test_lenet5_maps():
    s = models.lenet5().summary((1, 32, 32))
    shapes = [r[1][1:] for r in s.rows if "Conv2d" in r[0] or "AvgPool2d" in r[0]]
    assert shapes == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120, 1, 1)]
    s28 = models.lenet5(input_size=28).summary((1, 28, 28))
    assert s28.rows[0][1] == (1, 6, 28, 28)
    with pytest.raises(ValueError):
        models.lenet5(input_size=30)


def test_alexnet_count_and_maps():
    """62,378,344 built (the lecture quotes 62,369,152); 94.0% in the dense layers."""
    model = models.alexnet()
    s = model.summary((3, 227, 227))
    assert s.total_params == 62_378_344
    assert "Total params: 62,378,344" in s
    conv = sum(r[2] for r in s.rows if "Conv2d" in r[0])
    fc = sum(r[2] for r in s.rows if "Linear" in r[0])
    assert conv == 3_747_200 and fc == 58_631_144
    assert round(100 * fc / s.total_params, 1) == 94.0
    maps = [r[1][2] for r in s.rows if "Conv2d" in r[0] or "MaxPool2d" in r[0]]
    assert maps == [55, 27, 27, 13, 13, 13, 13, 6]
    assert s.output_shape == (1, 1000)
    assert models.alexnet(num_classes=10).num_parameters() == 62_378_344 - 4_097_000 + 40_970


# --------------------------------------------------------------------------
# Torch parity
# --------------------------------------------------------------------------


def _torch_block(torch, cin, cout, stride):
    tnn = torch.nn

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = tnn.Sequential(
                    tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout)
                )

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    return Block()


def _torch_inception(torch, cin, c1, c3r, c3, c5r, c5, pp):
    tnn = torch.nn

    class Inception(tnn.Module):
        def __init__(self):
            super().__init__()
            self.branch1 = tnn.Sequential(tnn.Conv2d(cin, c1, 1), tnn.ReLU())
            self.branch2 = tnn.Sequential(
                tnn.Conv2d(cin, c3r, 1), tnn.ReLU(), tnn.Conv2d(c3r, c3, 3, padding=1), tnn.ReLU()
            )
            self.branch3 = tnn.Sequential(
                tnn.Conv2d(cin, c5r, 1), tnn.ReLU(), tnn.Conv2d(c5r, c5, 5, padding=2), tnn.ReLU()
            )
            self.branch4 = tnn.Sequential(
                tnn.MaxPool2d(3, 1, 1), tnn.Conv2d(cin, pp, 1), tnn.ReLU()
            )

        def forward(self, x):
            return torch.cat(
                [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1
            )

    return Inception()


def _load_into_torch(torch, ours, theirs):
    sd = ours.state_dict()
    tsd = theirs.state_dict()
    assert list(sd) == list(tsd), "same names, same order"
    assert all(sd[k].shape == tuple(tsd[k].shape) for k in sd)
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()})


@pytest.mark.parametrize("cin, cout, stride", [(4, 4, 1), (4, 8, 2), (3, 6, 1)])
def test_resnet_block_matches_torch(cin, cout, stride):
    torch = pytest.importorskip("torch")
    nn.manual_seed(0)
    ours = models.resnet_basic_block(cin, cout, stride)
    assert isinstance(ours, models.BasicBlock)
    assert (ours.downsample is None) == (stride == 1 and cin == cout)
    theirs = _torch_block(torch, cin, cout, stride)
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())
    for bn in (ours.bn1, ours.bn2):
        nn.init.normal_(bn.weight)
        nn.init.normal_(bn.bias)
    _load_into_torch(torch, ours, theirs)
    for step in range(2):  # train mode: batch statistics, running stats updated
        ours.zero_grad()
        theirs.zero_grad()
        torch_check(ours, theirs, _f32(4, cin, 6, 6, seed=step), rtol=1e-4, atol=1e-4, grad_seed=7)
    tsd = theirs.state_dict()
    for k, v in ours.state_dict().items():
        np.testing.assert_allclose(v, tsd[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    ours.eval()
    theirs.eval()
    ours.zero_grad()
    theirs.zero_grad()
    torch_check(ours, theirs, _f32(2, cin, 6, 6, seed=9), rtol=1e-4, atol=1e-4, grad_seed=7)


def test_resnet_block_skip_connection():
    """With F's last BatchNorm zeroed, the block is relu(x) (identity) or relu(projection)."""
    block = models.resnet_basic_block(3, 3)
    nn.init.zeros_(block.bn2.weight)
    x = _f32(2, 3, 5, 5)
    np.testing.assert_allclose(block(x).data, np.maximum(x, 0), atol=1e-6)


def test_inception_matches_torch():
    torch = pytest.importorskip("torch")
    cfg = (6, 3, 2, 4, 2, 3, 2)
    ours = models.inception_module(*cfg)
    theirs = _torch_inception(torch, *cfg)
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())
    assert ours.out_channels == 3 + 4 + 3 + 2
    _load_into_torch(torch, ours, theirs)
    torch_check(ours, theirs, _f32(2, 6, 7, 5), rtol=1e-4, atol=1e-4, grad_seed=7)


def test_torch_counts_of_the_lecture_models():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    keras = models._keras_mnist_cnn(tnn, 10)  # the same table, from torch.nn
    assert sum(p.numel() for p in keras.parameters()) == 93_322
    assert sum(p.numel() for p in _torch_block(torch, 64, 128, 2).parameters()) == 230_144
    incep = _torch_inception(torch, 192, 64, 96, 128, 16, 32, 32)
    assert sum(p.numel() for p in incep.parameters()) == 163_696
    # Our keras CNN, with torch's weights, computes what torch computes.
    ours = models.keras_mnist_cnn()
    _load_into_torch(torch, ours, keras)
    x = _f32(3, 1, 28, 28)
    with no_grad():
        np.testing.assert_allclose(
            ours(x).data, keras(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5
        )


# --------------------------------------------------------------------------
# Learning and speed
# --------------------------------------------------------------------------


def _pattern_images(n, rng, size=12):
    """Four classes of 12x12 images: a horizontal, vertical, diagonal or anti-diagonal line
    at a random offset, plus Gaussian noise (sigma 0.3)."""
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 0.3, (n, 1, size, size)).astype(np.float32)
    off = rng.integers(0, size, n)
    ar = np.arange(size)
    for k in range(4):
        idx = np.flatnonzero(y == k)
        o = off[idx][:, None]
        if k == 0:
            x[idx[:, None], 0, o, ar[None, :]] += 1
        elif k == 1:
            x[idx[:, None], 0, ar[None, :], o] += 1
        elif k == 2:
            x[idx[:, None], 0, ar[None, :], (ar[None, :] + o) % size] += 1
        else:
            x[idx[:, None], 0, ar[None, :], (o - ar[None, :]) % size] += 1
    return x, y


def test_small_cnn_learns_synthetic_task():
    """~1 s on 2 idle cores; its time is not asserted (tests check results, not speed)."""
    rng = np.random.default_rng(0)
    xtr, ytr = _pattern_images(2000, rng)
    xte, yte = _pattern_images(500, rng)
    nn.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 8 @ 5x5
        nn.Conv2d(8, 16, 3),
        nn.ReLU(),
        nn.MaxPool2d(3),  # 16 @ 1x1
        nn.Flatten(),
        nn.Linear(16, 4),
    )
    opt = optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for _epoch in range(4):
        perm = rng.permutation(len(xtr))
        for b in range(0, len(xtr), 50):
            idx = perm[b : b + 50]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            first = loss.item() if first is None else first
    model.eval()
    with no_grad():
        acc = float((model(xte).data.argmax(axis=1) == yte).mean())
    assert loss.item() < first / 5
    assert acc >= 0.95, f"test accuracy {acc:.3f}"


def test_keras_cnn_step_profile_sees_every_op():
    """Forward, CrossEntropyLoss, backward and Adam at batch 128 under the profiler:
    every op of the step is reported, and the ops' time fits inside the step's.
    (The overhead budget, < 10% of the step outside the ops, is a speed target:
    ``python benchmarks/train_compare.py --step-only`` measures it.)"""
    nn.manual_seed(0)
    model = models.keras_mnist_cnn()
    opt = optim.Adam(model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    x = _f32(128, 1, 28, 28)
    y = np.random.default_rng(0).integers(0, 10, 128)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    step()
    for _ in range(2):
        with profiler.Profiler() as prof:
            t0 = time.perf_counter()
            step()
            wall = time.perf_counter() - t0
        assert 0 < prof.kernel_time() <= wall
        names = set(prof.totals())
        assert {
            "conv2d.forward",  # conv3, which no pool follows
            "conv2d+max_pool2d.forward",  # conv1 and conv2, fused with their ReLU and pool
            "conv2d.backward",
            "max_pool2d.backward",
            "linear.forward",
            "linear.backward",
            "relu.forward",
            "relu.backward",
            "cross_entropy",
            "optimizer.step",
        } <= names


@pytest.mark.parametrize("factory", [models.keras_mnist_cnn, models.mlp_mnist])
def test_empty_batch(factory):
    """A batch of 0 images gives 0 rows of logits, as in PyTorch (Flatten included)."""
    model = factory()
    x = Tensor(np.zeros((0, 1, 28, 28), np.float32), requires_grad=True)
    y = model(x)
    assert y.shape == (0, 10)
    y.sum().backward()
    assert x.grad.shape == (0, 1, 28, 28)
