"""The networks of the lecture notes, built from :mod:`fastconv.nn` (NCHW input).

Parameter counts (``model.summary(input_shape).total_params``), as in
``/work/shared/reference/cnn-facts.md``:

=====================================  ===========  ============
model                                  input        parameters
=====================================  ===========  ============
:func:`keras_mnist_cnn`                1x28x28      93,322
:func:`mlp_mnist`                      1x28x28      407,050
:func:`lenet5`                         1x32x32      61,706
:func:`alexnet`                        3x227x227    62,378,344
:func:`resnet_basic_block` (64, 64)    64xHxW       73,984
:func:`resnet_basic_block` (64, 128/2) 64xHxW       230,144
:func:`inception_module` (GoogLeNet 3a) 192xHxW    163,696
=====================================  ===========  ============

The models output logits: train them with :class:`fastconv.nn.CrossEntropyLoss`
(the softmax of the notes' last layers is fused into the loss).
"""

from __future__ import annotations

from typing import Any

from . import nn
from .tensor import Tensor, cat

__all__ = [
    "BasicBlock",
    "Inception",
    "alexnet",
    "inception_module",
    "keras_mnist_cnn",
    "lenet5",
    "mlp_mnist",
    "resnet_basic_block",
]


def keras_mnist_cnn(num_classes: int = 10) -> nn.Sequential:
    """The Keras MNIST CNN: input (1, 28, 28), valid padding, 93,322 parameters.

    Conv 32 3x3 + ReLU -> MaxPool 2 -> Conv 64 3x3 + ReLU -> MaxPool 2 ->
    Conv 64 3x3 + ReLU -> Flatten (576) -> Dense 64 + ReLU -> Dense 10.
    """
    return _keras_mnist_cnn(nn, num_classes)


def _keras_mnist_cnn(lib: Any, num_classes: int) -> Any:
    """The layers of :func:`keras_mnist_cnn` from ``lib``, which has PyTorch's names:
    :mod:`fastconv.nn` here, ``torch.nn`` in the torch parity test."""
    return lib.Sequential(
        lib.Conv2d(1, 32, 3), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(32, 64, 3), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(64, 64, 3), lib.ReLU(),
        lib.Flatten(), lib.Linear(576, 64), lib.ReLU(), lib.Linear(64, num_classes),
    )  # fmt: skip


def mlp_mnist(hidden: int = 512, num_classes: int = 10, dropout: float = 0.0) -> nn.Sequential:
    """The dense MNIST net 784 -> 512 (ReLU) -> 10: 401,920 + 5,130 = 407,050 parameters.

    Takes (N, 1, 28, 28) (or (N, 784)) input and flattens it. ``dropout > 0``
    adds a Dropout layer after the hidden ReLU (no parameters).
    """
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(784, hidden), nn.ReLU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, num_classes))
    return nn.Sequential(*layers)


def lenet5(input_size: int = 32, num_classes: int = 10) -> nn.Sequential:
    """LeNet-5 with tanh and 2x2/2 average pooling: 61,706 parameters.

    C1 6@28x28 (5x5) -> P1 6@14x14 -> C2 16@10x10 (5x5) -> P2 16@5x5 ->
    C3 120@1x1 (5x5) -> FC 84 -> 10. ``input_size=28`` pads C1 by 2 so MNIST's
    28x28 images give the same maps (and the same count). C2 is fully
    connected to P1's six maps (the original's sparse C2 table had 1,516
    weights instead of 2,416).
    """
    if input_size not in (28, 32):
        raise ValueError(f"lenet5: input_size must be 28 or 32, got {input_size}")
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2 if input_size == 28 else 0), nn.Tanh(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2, 2),
        nn.Conv2d(16, 120, 5), nn.Tanh(),
        nn.Flatten(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes),
    )  # fmt: skip


def alexnet(num_classes: int = 1000, dropout: float = 0.5) -> nn.Sequential:
    """AlexNet, ungrouped, for (3, 227, 227) input: 62,378,344 parameters.

    Conv1 96 11x11/4 -> 55, MaxPool 3/2 -> 27, Conv2 256 5x5 pad 2, MaxPool
    -> 13, Conv3 384, Conv4 384, Conv5 256 (3x3 pad 1), MaxPool -> 6, then
    FC 4096, FC 4096 (ReLU, dropout before each) and FC ``num_classes``
    (softmax in the loss). Convolutions hold 3,747,200 parameters, the fully
    connected layers 58,631,144 (94.0%). The lecture quotes 62,369,152
    weights; this is the count of the layers actually built, with biases.
    Local response normalisation is left out.
    """
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
        nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
        nn.Linear(4096, num_classes),
    )  # fmt: skip


class BasicBlock(nn.Module):
    """ResNet's basic block: ``H(x) = relu(F(x) + shortcut(x))``.

    ``F`` is conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN (convolutions
    without bias); the shortcut is the identity, or a 1x1 conv (stride) + BN
    projection when the stride or the channel count changes. Attribute names
    are torchvision's (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``downsample``).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.downsample = None

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def resnet_basic_block(in_channels: int, out_channels: int, stride: int = 1) -> BasicBlock:
    """A :class:`BasicBlock`; (64, 64) has 73,984 parameters, (64, 128, stride 2) 230,144."""
    return BasicBlock(in_channels, out_channels, stride)


class Inception(nn.Module):
    """GoogLeNet's inception module (v1, with ReLU after every convolution).

    Four branches on the same input, concatenated along channels:
    1x1 (``c1``); 1x1 (``c3_reduce``) -> 3x3 (``c3``); 1x1 (``c5_reduce``) ->
    5x5 (``c5``); 3x3/1 max pool -> 1x1 (``pool_proj``). Output channels
    ``c1 + c3 + c5 + pool_proj``, same height and width.
    """

    def __init__(
        self,
        in_channels: int,
        c1: int,
        c3_reduce: int,
        c3: int,
        c5_reduce: int,
        c5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1 = nn.Sequential(nn.Conv2d(in_channels, c1, 1), nn.ReLU())
        self.branch2 = nn.Sequential(
            nn.Conv2d(in_channels, c3_reduce, 1),
            nn.ReLU(),
            nn.Conv2d(c3_reduce, c3, 3, padding=1),
            nn.ReLU(),
        )
        self.branch3 = nn.Sequential(
            nn.Conv2d(in_channels, c5_reduce, 1),
            nn.ReLU(),
            nn.Conv2d(c5_reduce, c5, 5, padding=2),
            nn.ReLU(),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1),
            nn.Conv2d(in_channels, pool_proj, 1),
            nn.ReLU(),
        )
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


def inception_module(
    in_channels: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, pool_proj: int
) -> Inception:
    """An :class:`Inception` module; GoogLeNet's 3a, (192, 64, 96, 128, 16, 32, 32), has 163,696."""
    return Inception(in_channels, c1, c3_reduce, c3, c5_reduce, c5, pool_proj)
