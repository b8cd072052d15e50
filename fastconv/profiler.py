"""Wall time per op of the layer API: where a training step's time goes.

Every array computation of :mod:`fastconv.tensor` and :mod:`fastconv.ops`
(the fastconv kernels and the few NumPy ops, the losses) and
:meth:`fastconv.optim.Optimizer.step` is a function decorated with
:func:`timed`, which checks a single module global, ``_active``; with no
profiler active that check is the whole cost. Inside ``with Profiler() as
prof:`` each call's wall time is added to ``prof`` under its op name, forward
and backward apart: ``"conv2d.forward"``, ``"conv2d.backward"``,
``"max_pool2d.forward"``, ``"linear.backward"``, ``"relu.forward"``,
``"cross_entropy"``, ``"cross_entropy.backward"``, ``"optimizer.step"``, ...
A fused conv -> ReLU -> max-pool block (``nn.Sequential``) is one
``"conv2d+max_pool2d.forward"`` call.

The difference between a step's wall time and :meth:`Profiler.kernel_time` is
the Python overhead: graph bookkeeping, gradient accumulation, module calls.

Example
-------
>>> with fastconv.profiler.Profiler() as prof:          # doctest: +SKIP
...     loss = loss_fn(model(x), y); loss.backward(); opt.step()
>>> print(prof.table())                                  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from time import perf_counter
from typing import Any, Callable, TypeVar

__all__ = ["Profiler", "active", "timed"]

_F = TypeVar("_F", bound=Callable[..., Any])

# The profiler ops report to, or None (the one check made on every op).
_active: Profiler | None = None


def active() -> Profiler | None:
    """The active profiler, or None."""
    return _active


def timed(name: str) -> Callable[[_F], _F]:
    """Decorator: while a :class:`Profiler` is active, each call of the function adds
    its wall time under ``name``; otherwise the call is the function's alone.

    Also wraps a function defined elsewhere: ``timed("add.forward")(np.add)``.
    """

    def decorate(fn: _F) -> _F:
        @functools.wraps(fn)
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            prof = _active
            if prof is None:
                return fn(*args, **kwargs)
            t0 = perf_counter()
            out = fn(*args, **kwargs)
            prof.add(name, perf_counter() - t0)
            return out

        return timed_call  # type: ignore[return-value]

    return decorate


class Profiler:
    """Accumulates wall time per op name while active (a context manager; nests)."""

    def __init__(self) -> None:
        self._totals: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._prev: Profiler | None = None
        self._t0 = 0.0
        self.wall_time = 0.0  # seconds spent inside the ``with`` block(s)

    def __enter__(self) -> Profiler:  # noqa: PYI034
        global _active
        self._prev, _active = _active, self
        self._t0 = perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        global _active
        self.wall_time += perf_counter() - self._t0
        _active = self._prev
        self._prev = None

    def add(self, name: str, seconds: float) -> None:
        """Record one call of ``name`` that took ``seconds``."""
        self._totals[name] = self._totals.get(name, 0.0) + seconds
        self._counts[name] = self._counts.get(name, 0) + 1

    def reset(self) -> None:
        """Forget everything recorded so far."""
        self._totals.clear()
        self._counts.clear()
        self.wall_time = 0.0
        self._t0 = perf_counter()

    def totals(self) -> dict[str, float]:
        """Op name -> total seconds, largest first."""
        return dict(sorted(self._totals.items(), key=lambda kv: -kv[1]))

    def counts(self) -> dict[str, int]:
        """Op name -> number of calls."""
        return dict(self._counts)

    def kernel_time(self) -> float:
        """Seconds spent in all recorded ops."""
        return sum(self._totals.values())

    def table(self, wall_time: float | None = None, steps: int = 1) -> str:
        """A table of each op's time and share of ``wall_time``.

        Parameters
        ----------
        wall_time : float, optional
            The time the shares are taken of (e.g. the measured time of the
            profiled steps); default: the time spent inside the ``with`` block.
        steps : int
            Number of steps profiled; times are shown per step.
        """
        wall = self.wall_time if wall_time is None else float(wall_time)
        if wall <= 0:
            wall = max(self.kernel_time(), 1e-12)
        kernel = self.kernel_time()
        width = max([len(n) for n in self._totals] + [len("python overhead")])
        lines = [
            f"{'op':<{width}}  {'calls':>6}  {'ms/step':>9}  {'share':>6}",
            "-" * (width + 27),
        ]
        for name, t in self.totals().items():
            lines.append(
                f"{name:<{width}}  {self._counts[name] // max(steps, 1):>6}  "
                f"{1e3 * t / steps:>9.3f}  {100 * t / wall:>5.1f}%"
            )
        lines.append("-" * (width + 27))
        lines.append(
            f"{'ops total':<{width}}  {'':>6}  {1e3 * kernel / steps:>9.3f}  "
            f"{100 * kernel / wall:>5.1f}%"
        )
        overhead = wall - kernel
        lines.append(
            f"{'python overhead':<{width}}  {'':>6}  {1e3 * overhead / steps:>9.3f}  "
            f"{100 * overhead / wall:>5.1f}%"
        )
        lines.append(
            f"{'step (wall)':<{width}}  {'':>6}  {1e3 * wall / steps:>9.3f}  {100.0:>5.1f}%"
        )
        return "\n".join(lines)
