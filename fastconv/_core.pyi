"""Type stubs of fastconv._core, the pybind11 module (src/*.cpp).

Use the fastconv package, not this module: fastconv.functional documents the
arguments. Arrays are float32 (indices int64) numpy arrays; fastconv never
casts silently (TypeError). Shapes use the letters of cpp/include/fastconv/
shapes.h: N batch, C input channels, H,W input size, K output channels, R,S
kernel size, P,Q output size. tests/test_core_stubs.py checks that every
function of the module has a stub here.
"""

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
from typing_extensions import TypeAlias

_F32: TypeAlias = npt.NDArray[np.float32]
_I64: TypeAlias = npt.NDArray[np.int64]
_Pair: TypeAlias = int | Sequence[int]  # an int (used for both) or (h, w)
_Mask: TypeAlias = Sequence[bool]  # output_mask: 3 bools (grad_input, grad_weight, grad_bias)
_Grads: TypeAlias = tuple[_F32 | None, _F32 | None, _F32 | None]
_Pass: TypeAlias = Literal["forward", "backward_input", "backward_weight"]

__version__: str

# --- module.cpp: configuration, threads, workspaces, kernels ---------------

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def build_info() -> dict: ...
def release_workspace() -> None: ...
def workspace_bytes() -> dict[str, int]: ...
def kernel_names() -> list[str]: ...
def kernel_variants() -> list[str]: ...
def op_kernels() -> dict[str, str]: ...
def _reset_workspace_peak() -> None: ...
def _contention_state() -> dict[str, float]: ...
def _set_adaptive_threads(on: bool) -> None: ...
def _set_isa(name: str) -> None: ...
def _set_output_fill(value: float | None) -> None: ...
def _set_interrupt_poll_ms(ms: int) -> None: ...
def _set_output_guard(guard: int) -> None: ...

# --- conv2d_bindings.cpp ---------------------------------------------------

def conv_algos() -> list[str]: ...
def conv2d_choose_algo(
    pass_: _Pass,
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    stride: _Pair,
    padding: _Pair | str,
    dilation: _Pair,
    groups: int,
) -> str: ...
def conv2d_forward(
    x: _F32,
    weight: _F32,
    bias: _F32 | None,
    stride: _Pair,
    padding: _Pair | str,
    dilation: _Pair,
    groups: int,
    algo: str,
    activation: str | None = None,
) -> _F32: ...
def conv2d_max_pool2d(
    x: _F32,
    weight: _F32,
    bias: _F32 | None,
    stride: _Pair,
    padding: _Pair | str,
    dilation: _Pair,
    groups: int,
    algo: str,
    activation: str | None,
    kernel_size: _Pair,
    pool_stride: _Pair | None,
    pool_padding: _Pair,
    pool_dilation: _Pair,
    ceil_mode: bool,
    return_indices: bool,
) -> _F32 | tuple[_F32, _I64]: ...
def conv2d_backward(
    grad_output: _F32,
    x: _F32,
    weight: _F32,
    stride: _Pair,
    padding: _Pair | str,
    dilation: _Pair,
    groups: int,
    algo: str,
    output_mask: _Mask,
) -> _Grads: ...

# --- pool2d_bindings.cpp ---------------------------------------------------

def max_pool2d_forward(
    x: _F32,
    kernel_size: _Pair,
    stride: _Pair | None,
    padding: _Pair,
    dilation: _Pair,
    ceil_mode: bool,
    return_indices: bool,
) -> _F32 | tuple[_F32, _I64]: ...
def max_pool2d_backward(grad_output: _F32, indices: _I64, input_shape: Sequence[int]) -> _F32: ...
def avg_pool2d_forward(
    x: _F32,
    kernel_size: _Pair,
    stride: _Pair | None,
    padding: _Pair,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> _F32: ...
def avg_pool2d_backward(
    grad_output: _F32,
    input_shape: Sequence[int],
    kernel_size: _Pair,
    stride: _Pair | None,
    padding: _Pair,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> _F32: ...

# --- gemm_bindings.cpp -----------------------------------------------------

# x (..., in_features), weight (out_features, in_features) -> (..., out_features)
def linear(x: _F32, weight: _F32, bias: _F32 | None) -> _F32: ...

# grad_output (..., out_features) for x (..., in_features); dx has x's shape
def linear_backward(grad_output: _F32, x: _F32, weight: _F32, output_mask: _Mask) -> _Grads: ...
def sgemm(
    a: _F32,
    b: _F32,
    c: _F32 | None = None,
    alpha: float = 1.0,
    beta: float = 0.0,
    trans_a: bool = False,
    trans_b: bool = False,
    out: _F32 | None = None,
) -> _F32: ...
def fma_peak_gflops(threads: int, seconds: float = 0.3) -> float: ...

# --- eltwise_bindings.cpp --------------------------------------------------

def relu(x: _F32) -> _F32: ...
def relu_backward(grad_output: _F32, output: _F32) -> _F32: ...
