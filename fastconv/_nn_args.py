"""The checks of the layers' constructor arguments, in one place.

A bad argument fails where the layer is built (as PyTorch's constructors do
for the arguments they check) rather than at its first forward. The rules and
the wording are the functional API's (its kernels check the same at call
time): messages start with the layer's class name, ``TypeError`` for a wrong
type (a float or a bool where an int is expected), ``ValueError`` for a bad
value (``Conv2d: stride must be in [1, 2147483647], got (-1, -1)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The kernels' bound on kernel sizes, strides, paddings, dilations and groups
#: (``kMaxParam`` in cpp/include/fastconv/shapes.h).
_MAX_PARAM = 2**31 - 1


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


class _Args:
    """Checks of one layer's constructor arguments, so a bad one fails where the layer is built.

    Messages start with the layer's class name and otherwise use the wording
    of the functional API's errors (``Conv2d: stride must be in [1,
    2147483647], got (-1, -1)``): ``TypeError`` for a wrong type (a float or
    a bool where an int is expected), ``ValueError`` for a bad value.
    """

    def __init__(self, layer: object) -> None:
        self.layer = type(layer).__name__

    def _type(self, name: str, what: str, value: Any) -> TypeError:
        return TypeError(
            f"{self.layer}: {name} must be {what}, got {type(value).__name__} {value!r}"
        )

    def _int_type(self, name: str, value: Any) -> int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise self._type(name, "an int", value)
        return int(value)

    def int(self, name: str, value: Any, lo: int | None, hi: int | None = _MAX_PARAM) -> int:
        """``value`` as a Python int in ``[lo, hi]`` (``None``: unbounded)."""
        v = self._int_type(name, value)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            rule = f"in [{lo}, {hi}]" if lo is not None and hi is not None else f">= {lo}"
            raise ValueError(f"{self.layer}: {name} must be {rule}, got {v}")
        return v

    def pair(self, name: str, value: Any, lo: int) -> tuple[int, int]:
        """An int or a pair of ints (tuple or list) as a pair of Python ints in ``[lo, _MAX_PARAM]``."""
        if isinstance(value, (tuple, list)):
            if len(value) != 2:
                raise ValueError(
                    f"{self.layer}: {name} must be an int or a pair of ints, got {value!r} "
                    f"of length {len(value)}"
                )
            pair = (self._int_type(name, value[0]), self._int_type(name, value[1]))
        else:
            v = self._int_type(name, value)
            pair = (v, v)
        if min(pair) < lo or max(pair) > _MAX_PARAM:
            raise ValueError(f"{self.layer}: {name} must be in [{lo}, {_MAX_PARAM}], got {pair}")
        return pair

    def bool(self, name: str, value: Any) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise self._type(name, "a bool", value)
        return bool(value)

    def number(self, name: str, value: Any, ok: Any, rule: str) -> Any:
        """A real number (not a bool) for which ``ok(value)`` holds; ``rule`` says which."""
        if not _is_real(value):
            raise self._type(name, "a real number", value)
        if not ok(value):
            raise ValueError(f"{self.layer}: {name} must be {rule}, got {value!r}")
        return value

    def choice(self, name: str, value: Any, options: tuple[str, ...]) -> str:
        if not isinstance(value, str):
            raise self._type(name, "a str", value)
        if value not in options:
            listed = ", ".join(repr(o) for o in options)
            raise ValueError(f"{self.layer}: {name} must be one of {listed}, got {value!r}")
        return value

    def pool(self, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1) -> None:
        """The arguments of a pooling layer: the functional API's rules, PyTorch's too."""
        kernel = self.pair("kernel_size", kernel_size, 1)
        if stride is not None:
            self.pair("stride", stride, 1)
        pad = self.pair("padding", padding, 0)
        self.pair("dilation", dilation, 1)
        if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
            raise ValueError(
                f"{self.layer}: padding {pad} must be at most half of kernel_size {kernel}"
            )

    def conv_padding(self, padding: Any, stride: tuple[int, int]) -> tuple[int, int] | str:
        """A convolution's ``padding``: an int, a pair, ``"valid"``, or ``"same"`` if unstrided."""
        if not isinstance(padding, str):
            return self.pair("padding", padding, 0)
        if padding not in ("same", "valid"):
            raise ValueError(
                f"{self.layer}: padding must be an int, a pair of ints, 'same' or 'valid', "
                f"got {padding!r}"
            )
        if padding == "same" and stride != (1, 1):
            raise ValueError(  # PyTorch's rule (fastconv.conv2d itself would take it)
                f"{self.layer}: padding='same' is not supported for strided convolutions, "
                f"got stride {stride}"
            )
        return padding

    def adaptive_size(self, output_size: Any) -> Any:
        """An adaptive pool's ``output_size``: an int, None, or a pair of ints or Nones (>= 0)."""
        items = output_size if isinstance(output_size, (tuple, list)) else (output_size,)
        if isinstance(output_size, (tuple, list)) and len(output_size) != 2:
            raise ValueError(
                f"{self.layer}: output_size must be an int or a pair, got {output_size!r} of "
                f"length {len(output_size)}"
            )
        for v in items:
            if v is not None:
                self.int("output_size", v, 0, None)
        return tuple(output_size) if isinstance(output_size, list) else output_size

    def groups(self, groups: Any, in_channels: int, out_channels: int) -> int:
        """``groups`` >= 1 dividing both channel counts (PyTorch checks it at construction)."""
        g = self.int("groups", groups, 1)
        for name, n in (("in_channels", in_channels), ("out_channels", out_channels)):
            if n % g:
                raise ValueError(f"{self.layer}: groups={g} does not divide {name}={n}")
        return g
