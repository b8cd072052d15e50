"""Named layer shapes of the anchor networks, shared by ``fastconv.bench`` and ``benchmarks/``.

Each suite is the layer table of one network from the lecture notes
(``/work/shared/reference/cnn-facts.md``) at a fixed batch size. Every entry
has a stable dotted name (``mnist.conv2``, ``alexnet.pool1``, ...) that is the
row label of ``python -m fastconv.bench`` and the test id of the
pytest-benchmark files, so numbers from different tools can be joined on it.

Shape letters (as in the C++ kernels): N batch, C input channels, H,W input
size, K output channels, R,S kernel size, P,Q output size, G groups.

:class:`ConvShape` and :class:`PoolShape` are defined with the shape rules they
compute through, in ``fastconv._ref_shapes`` (the reference ops use them as
their validated geometry, the tests subclass ``ConvShape``); this module adds
:class:`LinearShape` and the suites.

Suites
------
``mnist``
    The Keras MNIST CNN at batch 128: input 1x28x28, conv 32 3x3 valid (26x26),
    max-pool 2x2/2 (13), conv 64 3x3 (11), max-pool 2x2/2 (5), conv 64 3x3 (3),
    dense 576->64, dense 64->10.
``alexnet``
    AlexNet (ungrouped, 227x227 input) at batch 16: conv1 96 11x11/4 (55),
    max-pool 3x3/2 (27), conv2 256 5x5 pad 2 (27), max-pool (13), conv3 384,
    conv4 384, conv5 256 (3x3 pad 1, 13), max-pool (6), fc6 9216->4096,
    fc7 4096->4096, fc8 4096->1000.
``lenet5``
    LeNet-5 at batch 128: input 1x32x32, C1 6 5x5 (28), avg-pool 2x2/2 (14),
    C2 16 5x5 (10), avg-pool (5), C3 120 5x5 (1), FC 120->84, FC 84->10.
``vgg``
    One VGG-style 3x3 layer at batch 16: 64->64 channels, 56x56, padding 1.
``resnet``
    One ResNet bottleneck 1x1 layer at batch 16: 256->64 channels, 56x56.

Any other layer is described by a spec string (``fastconv bench --shape``),
read by :func:`parse_shape`: ``N,C,H,W,K,R,S[,stride[,pad[,dilation[,groups]]]]``
for a convolution, ``max:N,C,H,W,k[,stride[,pad]]`` or ``avg:...`` for a
pooling (stride defaults to k) and ``linear:B,in,out``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ._ref_shapes import ConvShape, PoolShape

__all__ = [
    "SUITES",
    "ConvShape",
    "LayerShape",
    "LinearShape",
    "PoolShape",
    "all_shapes",
    "get_shape",
    "parse_shape",
    "suite",
]


@dataclass(frozen=True)
class LinearShape:
    """One fully connected layer: x is (B, in_features), w is (out_features, in_features)."""

    name: str
    B: int
    in_features: int
    out_features: int

    kind = "linear"

    @property
    def x_shape(self) -> tuple[int, int]:
        return (self.B, self.in_features)

    @property
    def w_shape(self) -> tuple[int, int]:
        return (self.out_features, self.in_features)

    @property
    def flops(self) -> int:
        """FLOPs of the forward pass, ``2*B*in*out`` (the bias add is not counted)."""
        return 2 * self.B * self.in_features * self.out_features

    def describe(self) -> str:
        return f"B={self.B} {self.in_features}->{self.out_features}"


LayerShape = Union[ConvShape, PoolShape, LinearShape]


def _mnist(n: int = 128) -> tuple[LayerShape, ...]:
    """The lecture's Keras MNIST CNN (valid padding, ReLU, 2x2 max pools)."""
    return (
        ConvShape("mnist.conv1", n, 1, 28, 28, 32, 3, 3),  # -> 26x26
        PoolShape("mnist.pool1", "max", n, 32, 26, 26, 2, 2),  # -> 13x13
        ConvShape("mnist.conv2", n, 32, 13, 13, 64, 3, 3),  # -> 11x11
        PoolShape("mnist.pool2", "max", n, 64, 11, 11, 2, 2),  # -> 5x5
        ConvShape("mnist.conv3", n, 64, 5, 5, 64, 3, 3),  # -> 3x3
        LinearShape("mnist.dense1", n, 576, 64),
        LinearShape("mnist.dense2", n, 64, 10),
    )


def _alexnet(n: int = 16) -> tuple[LayerShape, ...]:
    """AlexNet without channel groups, 227x227 input, overlapping 3x3/2 max pools."""
    return (
        ConvShape("alexnet.conv1", n, 3, 227, 227, 96, 11, 11, stride=4),  # -> 55x55
        PoolShape("alexnet.pool1", "max", n, 96, 55, 55, 3, 2),  # -> 27x27
        ConvShape("alexnet.conv2", n, 96, 27, 27, 256, 5, 5, padding=2),  # -> 27x27
        PoolShape("alexnet.pool2", "max", n, 256, 27, 27, 3, 2),  # -> 13x13
        ConvShape("alexnet.conv3", n, 256, 13, 13, 384, 3, 3, padding=1),  # -> 13x13
        ConvShape("alexnet.conv4", n, 384, 13, 13, 384, 3, 3, padding=1),
        ConvShape("alexnet.conv5", n, 384, 13, 13, 256, 3, 3, padding=1),
        PoolShape("alexnet.pool5", "max", n, 256, 13, 13, 3, 2),  # -> 6x6
        LinearShape("alexnet.fc6", n, 256 * 6 * 6, 4096),
        LinearShape("alexnet.fc7", n, 4096, 4096),
        LinearShape("alexnet.fc8", n, 4096, 1000),
    )


def _lenet5(n: int = 128) -> tuple[LayerShape, ...]:
    """LeNet-5 (tanh, 2x2/2 average pools) on 32x32 inputs."""
    return (
        ConvShape("lenet5.conv1", n, 1, 32, 32, 6, 5, 5),  # C1 -> 28x28
        PoolShape("lenet5.pool1", "avg", n, 6, 28, 28, 2, 2),  # P1 -> 14x14
        ConvShape("lenet5.conv2", n, 6, 14, 14, 16, 5, 5),  # C2 -> 10x10
        PoolShape("lenet5.pool2", "avg", n, 16, 10, 10, 2, 2),  # P2 -> 5x5
        ConvShape("lenet5.conv3", n, 16, 5, 5, 120, 5, 5),  # C3 -> 1x1
        LinearShape("lenet5.fc1", n, 120, 84),
        LinearShape("lenet5.fc2", n, 84, 10),
    )


#: Suite name -> layers in network order.
SUITES: dict[str, tuple[LayerShape, ...]] = {
    "mnist": _mnist(),
    "alexnet": _alexnet(),
    "lenet5": _lenet5(),
    "vgg": (ConvShape("vgg.conv", 16, 64, 56, 56, 64, 3, 3, padding=1),),
    "resnet": (ConvShape("resnet.conv1x1", 16, 256, 56, 56, 64, 1, 1),),
}


def suite(name: str) -> tuple[LayerShape, ...]:
    """The layers of one suite (``"mnist"``, ``"alexnet"``, ``"lenet5"``, ``"vgg"``,
    ``"resnet"``) in network order."""
    try:
        return SUITES[name]
    except KeyError:
        raise ValueError(f"unknown suite {name!r}; choose from {sorted(SUITES)}") from None


def all_shapes() -> tuple[LayerShape, ...]:
    """Every layer of every suite, suites in ``SUITES`` order."""
    return tuple(s for layers in SUITES.values() for s in layers)


def get_shape(name: str) -> LayerShape:
    """Look a layer up by its dotted name, e.g. ``get_shape("alexnet.conv2")``."""
    for s in all_shapes():
        if s.name == name:
            return s
    raise KeyError(f"no layer shape named {name!r}")


# Spec fields per kind: (names of the required fields, names of the optional ones).
_SPEC_FIELDS = {
    "conv": (("N", "C", "H", "W", "K", "R", "S"), ("stride", "padding", "dilation", "groups")),
    "max": (("N", "C", "H", "W", "kernel"), ("stride", "padding")),
    "avg": (("N", "C", "H", "W", "kernel"), ("stride", "padding")),
    "linear": (("B", "in_features", "out_features"), ()),
}


def parse_shape(spec: str, name: str = "custom.layer") -> LayerShape:
    """The layer a spec string describes (see the module docstring), named ``name``.

    ``"8,16,32,32,32,3,3,1,1"`` is a conv of 8 images of 16x32x32 into 32
    channels with 3x3 filters, stride 1, padding 1; ``"max:8,16,32,32,2"`` a
    2x2/2 max-pool; ``"linear:128,576,64"`` a dense layer. Raises
    ``ValueError`` naming the bad field or the impossible geometry.
    """
    kind, _, body = spec.rpartition(":")
    kind = kind.strip().lower() or "conv"
    if kind not in _SPEC_FIELDS:
        raise ValueError(f"unknown layer kind {kind!r} in {spec!r}; use conv, max, avg or linear")
    required, optional = _SPEC_FIELDS[kind]
    parts = [p.strip() for p in body.split(",")]
    if not required[0] or not (len(required) <= len(parts) <= len(required) + len(optional)):
        usage = ",".join(required) + "".join(f"[,{o}" for o in optional) + "]" * len(optional)
        raise ValueError(f"{spec!r}: expected {usage} ({len(parts)} values given)")
    values: dict[str, int] = {}
    for field, text in zip(required + optional, parts):
        try:
            v = int(text)
        except ValueError:
            raise ValueError(f"{spec!r}: {field}={text!r} is not an integer") from None
        lowest = 0 if field == "padding" else 1
        if v < lowest:
            raise ValueError(f"{spec!r}: {field}={v} must be at least {lowest}")
        values[field] = v
    if kind == "linear":
        return LinearShape(name, **values)
    if kind == "conv":
        shape: LayerShape = ConvShape(name, **values)
        g = values.get("groups", 1)
        if values["C"] % g or values["K"] % g:
            raise ValueError(
                f"{spec!r}: groups={g} must divide C={values['C']} and K={values['K']}"
            )
    else:
        values.setdefault("stride", values["kernel"])
        if 2 * values.get("padding", 0) > values["kernel"]:
            raise ValueError(f"{spec!r}: padding must be at most half the kernel size")
        shape = PoolShape(name, kind, **values)
    if shape.P <= 0 or shape.Q <= 0:
        raise ValueError(f"{spec!r}: the output would be {shape.P}x{shape.Q}")
    return shape
