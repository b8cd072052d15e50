"""Shared fixtures of fastconv's test suite.

* ``isa``: parametrises a test over every kernel ISA compiled into the build
  (``build_info()["isas_compiled"]``); an ISA the CPU cannot run is skipped
  (``_set_isa`` raises RuntimeError for it). The ISA that was active before
  the test is restored afterwards.
* Every test leaves the process as it found it: the output pre-fill hook is
  switched off and the thread count restored after each test (autouse).
* ``output_fill``: a setter for ``_core._set_output_fill`` (NaN pre-fill proves
  kernels overwrite every output element and never read it).
* ``output_guard``: a setter for ``_core._set_output_guard`` (sentinels around
  every new output prove kernels never write outside it); reset to 0 after
  every test, like the fill.
* ``@pytest.mark.isolated``: the test runs in a child pytest process, so that
  a memory error in a kernel (heap corruption, segfault) fails that test
  instead of killing the whole session. Used for the random-shape property
  tests and for shapes that once corrupted memory.
* ``@pytest.mark.bigmem``: the test allocates many GiB (arrays with more than
  2**31 elements). It runs by default, and skips itself (with the reason) when
  /proc/meminfo's MemAvailable is too small or under the sanitizers.
* ``@pytest.mark.slow``: takes more than about a minute (deselect with
  ``-m "not slow"``).
* ``SANITIZED``: true under tools/sanitize.sh (ASan + UBSan), where RSS
  measurements, multi-GiB allocations and valgrind make no sense.
* Hypothesis profiles: ``ci`` (the default: 300 examples, no deadline) and
  ``long`` (5,000 examples), selected with ``--hypothesis-profile=long``.
"""

from __future__ import annotations

import os
import sys

import pytest

try:
    from fastconv import _core
except ImportError as err:  # the README's first line installs it
    raise pytest.UsageError(
        f"cannot import fastconv ({err}): the tests run against the installed "
        "package; install it first with: pip install '.[test]'"
    ) from err

from child import run_child  # noqa: E402  (imports fastconv)
from hypothesis import HealthCheck, settings  # noqa: E402

for _profile, _examples in (("ci", 300), ("long", 5000)):
    settings.register_profile(
        _profile,
        max_examples=_examples,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
# The default; hypothesis' own --hypothesis-profile option (applied later, in
# its pytest_configure) overrides it.
settings.load_profile(os.environ.get("FASTCONV_HYPOTHESIS_PROFILE", "ci"))

ISAS_COMPILED = list(_core.build_info()["isas_compiled"])
SANITIZED = os.environ.get("FASTCONV_SANITIZED") == "1"


def mem_available_bytes() -> int:
    """MemAvailable from /proc/meminfo (0 if unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def require_memory(nbytes: int, what: str) -> None:
    """Skip the calling test unless nbytes are available (and not under the sanitizers)."""
    if SANITIZED:
        pytest.skip(f"{what}: multi-GiB allocations are not run under ASan (shadow memory)")
    avail = mem_available_bytes()
    if avail < nbytes:
        pytest.skip(
            f"{what}: needs {nbytes / 2**30:.1f} GiB but MemAvailable is {avail / 2**30:.1f} GiB"
        )


@pytest.fixture(params=ISAS_COMPILED)
def isa(request):
    """Run the test with the kernels of one ISA, then restore the previous one."""
    before = _core.build_info()["isa_active"]
    try:
        _core._set_isa(request.param)
    except RuntimeError as e:
        pytest.skip(f"ISA {request.param} not supported on this CPU: {e}")
    assert _core.build_info()["isa_active"] == request.param
    try:
        yield request.param
    finally:
        _core._set_isa(before)


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Output fill and guards off and the thread count restored after every test."""
    threads = _core.get_num_threads()
    isa_before = _core.build_info()["isa_active"]
    yield
    _core._set_output_fill(None)
    _core._set_output_guard(0)
    _core.set_num_threads(threads)
    if _core.build_info()["isa_active"] != isa_before:
        _core._set_isa(isa_before)


@pytest.fixture
def output_fill():
    """Returns a setter for the output pre-fill value (reset to None afterwards)."""
    yield _core._set_output_fill
    _core._set_output_fill(None)


@pytest.fixture
def output_guard():
    """Returns a setter for the output guard size (reset to 0 afterwards)."""
    yield _core._set_output_guard
    _core._set_output_guard(0)


# ---------------------------------------------------------------------------
# @pytest.mark.isolated: run the test body in a child process
# ---------------------------------------------------------------------------

_CHILD_ENV = "FASTCONV_TEST_CHILD"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "isolated: run the test in a child pytest process (crash isolation)"
    )
    config.addinivalue_line(
        "markers",
        "bigmem: allocates many GiB; runs by default, skips itself when MemAvailable is too "
        "small or under the sanitizers",
    )
    config.addinivalue_line("markers", "slow: takes more than about a minute")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if pyfuncitem.get_closest_marker("isolated") is None or os.environ.get(_CHILD_ENV):
        return None  # run normally
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--no-header",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        # An absolute node id, run from outside the source tree (see child.py).
        str(pyfuncitem.config.rootpath / pyfuncitem.nodeid),
    ]
    profile = pyfuncitem.config.getoption("hypothesis_profile", None)
    if profile:
        cmd.append(f"--hypothesis-profile={profile}")
    seed = pyfuncitem.config.getoption("hypothesis_seed", None)
    if seed is not None:
        cmd.append(f"--hypothesis-seed={seed}")
    r = run_child(cmd, 600, **{_CHILD_ENV: "1"})
    if r.returncode != 0:
        crashed = r.returncode < 0 or "Fatal Python error" in r.stderr
        pytest.fail(
            f"child process {'CRASHED' if crashed else 'failed'} (exit code {r.returncode}) "
            f"running {pyfuncitem.nodeid}\n--- stdout ---\n{r.stdout[-6000:]}"
            f"\n--- stderr ---\n{r.stderr[-3000:]}",
            pytrace=False,
        )
    if " passed" not in r.stdout.splitlines()[-1]:
        pytest.fail(f"child ran no passing test:\n{r.stdout[-3000:]}", pytrace=False)
    return True
