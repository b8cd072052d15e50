"""pytest-benchmark setup shared by ``bench_*.py``: threads, header, adaptive rounds,
and the ``bench_layer`` fixture that times one strategy on one op of a named layer.

Options
-------
``--fastconv-threads N``
    Threads for fastconv and, through threadpoolctl, NumPy's BLAS (default:
    fastconv's default, i.e. ``OMP_NUM_THREADS`` or all cores).
``--bench-target-time S``
    Seconds of timed calls wanted per benchmark (default 1.0); rounds are
    derived from one warm-up call, at least 3 and at most 100.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

import fastconv
from fastconv._shapes import LayerShape
from fastconv._timing import limit_blas_threads
from fastconv.bench_cases import KernelNames, make_case
from fastconv.bench_strategies import registry, torch_module


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fastconv benchmarks")
    group.addoption("--fastconv-threads", type=int, default=None, help="threads for fastconv/BLAS")
    group.addoption(
        "--bench-target-time", type=float, default=1.0, help="timed seconds per benchmark"
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect ``bench_*.py`` when this directory is given (``pytest benchmarks/``).

    Files named on the command line are collected by pytest itself whatever
    their name, so they are skipped here to avoid collecting them twice.
    """
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and not parent.session.isinitpath(file_path)
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def _threads(config: pytest.Config) -> int:
    return config.getoption("--fastconv-threads") or fastconv.get_num_threads()


def pytest_report_header(config: pytest.Config) -> list[str]:
    cfg = fastconv.show_config()
    line = (
        f"fastconv {fastconv.__version__}: ISA {cfg['isa_active']}, "
        f"threads {_threads(config)} ({cfg['openmp_runtime']}), BLAS limited to the same"
    )
    return [line]


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    cfg = fastconv.show_config()
    machine_info["fastconv"] = {
        "version": fastconv.__version__,
        "isa_active": cfg["isa_active"],
        "threads": _threads(config),
        "kernels": cfg["kernels"],
    }


@pytest.fixture(scope="session", autouse=True)
def fastconv_threads(pytestconfig: pytest.Config) -> Iterator[int]:
    """Set fastconv's thread count and cap NumPy's BLAS at the same for the session."""
    n = _threads(pytestconfig)
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(n)
    with contextlib.ExitStack() as stack:
        stack.enter_context(limit_blas_threads(n))
        yield n
    fastconv.set_num_threads(old)


@pytest.fixture
def measure(benchmark: Any, pytestconfig: pytest.Config) -> Callable[..., None]:
    """``measure(fn, work, unit, kernel)``: benchmark ``fn`` with rounds fitted to its speed.

    One untimed warm-up call sizes the rounds (``--bench-target-time``); after
    the run, ``extra_info`` gets the kernel name and the median rate
    (GFLOP/s or GB/s).
    """
    target = pytestconfig.getoption("--bench-target-time")

    def run(fn: Callable[[], object], work: float, unit: str, kernel: str) -> None:
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
        rounds = int(min(100, max(3, target / max(first, 1e-9))))
        benchmark.extra_info.update({"kernel": kernel, "work": work, "unit": unit})
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
        stats = getattr(benchmark, "stats", None)
        if stats is not None and work:
            benchmark.extra_info["rate"] = work / stats.stats.median / 1e9

    return run


@pytest.fixture
def bench_layer(
    benchmark: Any, measure: Callable[..., None], fastconv_threads: int
) -> Callable[..., None]:
    """``bench_layer(shape, op, strategy)``: time one strategy of the registry
    (:mod:`fastconv.bench_strategies`) on one op of a named layer; each (layer, op)
    is one benchmark group. An unavailable strategy, or one that does not
    implement the op, is skipped with the reason."""

    def run(shape: LayerShape, op: str, name: str) -> None:
        benchmark.group = f"{shape.name} {op}"
        strategy = registry()[name]
        reason = strategy.unavailable()
        if reason:
            pytest.skip(f"{name} unavailable: {reason}")
        case = make_case(shape, op)
        fn = strategy.bind(case)
        if fn is None:
            pytest.skip(f"{name} does not implement {shape.name} {op}")
        if name == "torch":
            torch_module()[0].set_num_threads(fastconv_threads)
        measure(fn, case.work, case.unit, strategy.kernel(case, KernelNames()))

    return run
