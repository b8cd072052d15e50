"""The wheel as a user gets it: built by tools/build_wheels.sh from the sdist,
installed into a fresh virtual environment that has no C/C++ compiler on its
PATH, then the test suite (from the sdist) run against the installed package,
and the installed package under ``qemu-x86_64 -cpu <model>`` (older CPUs);
plus an aarch64 build (tools/cross_aarch64.sh) under ``qemu-aarch64``.

Slow (a build, a venv and the whole suite again: ~8 minutes), so it runs only
when asked: ``FASTCONV_TEST_WHEEL=1 pytest tests/test_wheel.py`` (.ci/run
does). ``FASTCONV_WHEELHOUSE=DIR`` reuses a wheelhouse/ that
tools/build_wheels.sh already filled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMOKE = Path(__file__).resolve().parent / "wheel_smoke.py"
COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "clang++")
# What the suite needs besides fastconv and numpy (not the build tools of
# `.[test]`: the tests that build instrumented copies skip without them).
TEST_DEPS = ("pytest>=7", "pytest-benchmark>=4", "hypothesis>=6", "threadpoolctl>=3")
# (qemu CPU model, the ISA fastconv must pick on it). QEMU's TCG (7.2, Debian
# 12) emulates AVX2 but not AVX-512: on Skylake-Server it filters the AVX-512
# feature bits out of CPUID, so fastconv must fall back to avx2 there and not
# die with SIGILL. The host runs the AVX-512 kernels natively.
QEMU_CPUS = (("Westmere", "scalar"), ("Haswell", "avx2"), ("Skylake-Server", "avx2"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("FASTCONV_TEST_WHEEL") != "1",
        reason="builds and installs the wheel (~8 min): set FASTCONV_TEST_WHEEL=1 (.ci/run does)",
    ),
]


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    assert r.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited with {r.returncode}\n"
        f"stdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-4000:]}"
    )
    return r


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    given = os.environ.get("FASTCONV_WHEELHOUSE")
    if given:
        return Path(given).resolve()
    _run(
        ["bash", str(ROOT / "tools" / "build_wheels.sh")],
        env={**os.environ, "PYTHON": sys.executable},
    )
    return ROOT / "wheelhouse"


@pytest.fixture(scope="module")
def installed(wheelhouse, tmp_path_factory) -> dict:
    """A fresh venv with the repaired wheel and the test dependencies; its
    PATH (the venv's bin only) has no compiler."""
    (wheel,) = wheelhouse.glob("fastconv-*-manylinux_*_x86_64.whl")
    (sdist,) = wheelhouse.glob("fastconv-*.tar.gz")
    base = tmp_path_factory.mktemp("wheel")
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True, symlinks=True).create(env_dir)
    bindir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FASTCONV_"))}
    env.update(PATH=str(bindir), CC="/nonexistent/cc", CXX="/nonexistent/c++")
    python = str(bindir / "python")
    # --only-binary: pip must not build anything (there is no compiler).
    _run(
        [python, "-m", "pip", "install", "-q", "--only-binary=:all:", str(wheel), *TEST_DEPS],
        env=env,
        cwd=base,
    )
    with tarfile.open(sdist) as t:
        # Our own sdist; the "data" filter (3.12+) only silences a warning.
        kwargs = {"filter": "data"} if sys.version_info >= (3, 12) else {}
        t.extractall(base, **kwargs)
    (src,) = base.glob("fastconv-*/")
    return {
        "python": python,
        "bin": bindir,
        "env": env,
        "base": base,
        "sdist_dir": src,
        "wheel": wheel,
        "sdist": sdist,
    }


def test_the_wheel_is_manylinux_with_openmp_inside(installed):
    import zipfile

    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert any(n.startswith("fastconv.libs/libgomp-") for n in names), names
    assert any(n.endswith("LICENSE") for n in names), "the wheel carries no LICENSE"


def test_the_sdist_holds_every_tracked_file(installed):
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to compare the sdist with")
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    with tarfile.open(installed["sdist"]) as t:
        inside = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    missing = [f for f in tracked if not f.startswith(".ci/") and f not in inside]
    assert not missing, f"files of the repository missing from the sdist: {missing}"


def test_no_compiler_on_the_venv_path(installed):
    found = {c: shutil.which(c, path=installed["env"]["PATH"]) for c in COMPILERS}
    assert not any(found.values()), found


def test_the_suite_passes_against_the_installed_wheel(installed):
    # `pytest` (not `python -m pytest`): the sdist's fastconv/ source folder
    # must not shadow the installed package.
    where = _run(
        [installed["python"], "-c", "import fastconv; print(fastconv.__file__)"],
        env=installed["env"],
        cwd=installed["base"],
    ).stdout.strip()
    assert where.startswith(str(installed["base"] / "venv")), where
    r = _run(
        [str(installed["bin"] / "pytest"), "-q", "-x", "-p", "no:cacheprovider", "tests"],
        env=installed["env"],
        cwd=installed["sdist_dir"],
        timeout=1800,
    )
    assert " passed" in r.stdout.splitlines()[-1], r.stdout[-2000:]


def _smoke(installed, prefix=(), **env) -> dict:
    r = _run(
        [*prefix, installed["python"], str(SMOKE)],
        env={**installed["env"], **env},
        cwd=installed["base"],
        timeout=600,
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("cpu, isa", QEMU_CPUS)
def test_under_qemu(installed, cpu, isa):
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        pytest.skip("qemu-x86_64 is not installed (Debian: apt-get install qemu-user)")
    emulated = _smoke(installed, (qemu, "-cpu", cpu))
    assert emulated["isa"] == isa
    assert emulated["file"].startswith(str(installed["base"] / "venv"))
    # The same ISA's kernels on the host give the same bits.
    host = _smoke(installed, FASTCONV_ISA=isa)
    assert host["isa"] == isa
    assert emulated["digests"] == host["digests"]


def test_aarch64_under_qemu(installed):
    """aarch64 (scalar kernels) cross-built by tools/cross_aarch64.sh and run on
    Debian's arm64 CPython under qemu-aarch64: the same bits as x86-64's scalar
    level (no a*b+c is contracted into an FMA there; see CMakeLists.txt)."""
    missing = [t for t in ("aarch64-linux-gnu-g++", "qemu-aarch64", "dpkg") if not shutil.which(t)]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not found (Debian: apt-get install g++-aarch64-linux-gnu "
            "qemu-user; dpkg --add-architecture arm64 && apt-get update)"
        )
    foreign = _run(["dpkg", "--print-foreign-architectures"]).stdout.split()
    if "arm64" not in foreign:
        pytest.skip("no arm64 package lists (dpkg --add-architecture arm64 && apt-get update)")
    r = _run(["bash", str(ROOT / "tools" / "cross_aarch64.sh"), "smoke"], timeout=1200)
    emulated = json.loads(r.stdout.strip().splitlines()[-1])
    assert emulated["isa"] == "scalar"
    assert emulated["file"].startswith(str(ROOT / "build" / "aarch64"))
    assert emulated["digests"] == _smoke(installed, FASTCONV_ISA="scalar")["digests"]
