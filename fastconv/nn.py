"""Layers, losses and initialisers on :class:`fastconv.Tensor`, with PyTorch's names.

A :class:`Module` registers the :class:`Parameter`, buffers (NumPy arrays such
as BatchNorm's running statistics) and sub-modules assigned to its attributes,
in assignment order. Each layer's ``forward`` is one call of an op of
:mod:`fastconv.ops` or :mod:`fastconv.tensor`, whose forward and backward call
:mod:`fastconv.functional` (convolution, pooling, linear, ReLU) or NumPy.

Initialisation follows PyTorch's defaults (``Conv2d``/``Linear``: weights
``kaiming_uniform_(a=sqrt(5))``, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and
the bias from the same range), drawn from a module-level
``numpy.random.Generator``: :func:`manual_seed` makes model construction and
dropout masks reproducible.

Constructors check their arguments, so a mistake fails where the layer is
built rather than at its first forward: ``TypeError`` for a wrong type (a float
or a bool where an int is expected), ``ValueError`` for a bad value, each
naming the layer, the argument and the value in the words of the functional
API's errors (``Conv2d: stride must be in [1, 2147483647], got (-1, -1)``).

This module gathers the public names of its parts: ``_nn_module`` (Module,
Parameter, hooks, state dicts, summary), ``_nn_container`` (Sequential,
ModuleList, ModuleDict), ``_nn_conv`` (Conv2d, ConvTranspose2d),
``_nn_pool`` (max, average, adaptive pools, unpooling), ``_nn_act``
(activations), ``_nn_norm`` (batch, layer, group norm), ``_nn_layers``
(linear, flatten, identity, dropout), ``_nn_loss``, ``_nn_init`` (the
initialisers and the generator, also importable as ``fastconv.nn.init``)
and ``_nn_args`` (the constructors' argument checks).
"""

import sys

from . import _nn_init as init
from . import _nn_utils as utils
from ._nn_act import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from ._nn_container import ModuleDict, ModuleList, Sequential
from ._nn_conv import Conv2d, ConvTranspose2d

# The generator; the initialisers (not in __all__) stay fastconv.nn.<name> as before the split.
from ._nn_init import (  # noqa: F401
    calculate_gain,
    constant_,
    get_rng,
    kaiming_normal_,
    kaiming_uniform_,
    manual_seed,
    normal_,
    ones_,
    uniform_,
    xavier_normal_,
    xavier_uniform_,
    zeros_,
)
from ._nn_layers import Dropout, Flatten, Identity, Linear
from ._nn_loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
)
from ._nn_module import Module, Parameter, RemovableHandle, Summary
from ._nn_norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from ._nn_pool import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d, MaxUnpool2d

__all__ = [
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "CrossEntropyLoss",
    "Dropout",
    "ELU",
    "Flatten",
    "GELU",
    "GroupNorm",
    "HuberLoss",
    "Identity",
    "L1Loss",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "MaxPool2d",
    "MaxUnpool2d",
    "Module",
    "ModuleDict",
    "ModuleList",
    "NLLLoss",
    "Parameter",
    "ReLU",
    "RemovableHandle",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Summary",
    "Tanh",
    "get_rng",
    "init",
    "manual_seed",
]

# ``import fastconv.nn.init`` and ``from fastconv.nn import init``, as torch.nn.init.
sys.modules[__name__ + ".init"] = init
sys.modules[__name__ + ".utils"] = utils  # clip_grad_norm_, ..., as torch.nn.utils
