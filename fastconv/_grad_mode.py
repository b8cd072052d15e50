"""Grad mode: whether ops record the graph (:class:`no_grad`, :class:`enable_grad`).

Re-exported by :mod:`fastconv.tensor`; the ops read :data:`enabled`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

__all__ = ["enable_grad", "is_grad_enabled", "no_grad"]


# Whether ops record the graph (read by every op; set by no_grad / enable_grad).
enabled = True


def is_grad_enabled() -> bool:
    """True unless inside :class:`no_grad`."""
    return enabled


class no_grad:
    """Context manager (or decorator) under which ops record no graph.

    Outputs of ops computed inside have ``requires_grad=False``, so nothing is
    saved for a backward pass (inference, evaluation, summaries).
    """

    _enabled = False

    def __new__(cls, func: Callable | None = None) -> Any:
        # ``@no_grad`` (without parentheses) decorates ``func`` directly.
        self = super().__new__(cls)
        return self if func is None else self(func)

    def __enter__(self) -> None:
        global enabled
        self._prev = enabled
        enabled = self._enabled

    def __exit__(self, *exc: object) -> None:
        global enabled
        enabled = self._prev

    def __call__(self, fn: Callable) -> Callable:
        cls = type(self)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with cls():
                return fn(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Context manager that turns graph recording back on inside :class:`no_grad`."""

    _enabled = True
