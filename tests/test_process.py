"""The process around the kernels: many Python threads at once, the GIL, fork,
Ctrl-C, resident memory over many calls, and valgrind's memcheck.

(hostile-inputs.md, "Runtime"; another thread writing into an input during a
call is in test_hostile.py.)

* ``test_many_python_threads_match_serial``: 8 Python threads x 25 calls of
  every op (conv forward and backward per algorithm, max and average pooling
  forward and backward, linear) at once, each bitwise equal to a serial call.
* ``test_gil_released_during_every_op``: a pure-Python thread keeps running
  while each op's kernels run (the two threads overlap in time).
* ``test_fork_child_and_grandchild``: after OpenMP ran, a multiprocessing child
  started with "fork", and its own child, compute every op bitwise like the
  parent; a hang fails the test (timeouts), it never hangs the suite.
* ``test_ctrl_c``: SIGINT to a child process in the middle of a multi-second
  call (AlexNet conv2 backward and forward, N=64; large pools): the call raises
  KeyboardInterrupt within 0.5 s and the next call is bitwise correct.
* ``test_resident_memory_is_flat``: 10,000 calls of each op (and of its error
  paths) after 1,000 warm-up calls grow RSS by less than 2 MiB.
* ``test_valgrind_memcheck`` runs tools/valgrind.sh; ``test_import_on_a_cpu_
  without_avx512`` imports fastconv on valgrind's virtual CPU (no AVX-512).

Every child process imports the same fastconv as this process (child.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import multiprocessing
import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cases import rng_for
from child import CHILD_CWD, child_env, run_child
from conftest import SANITIZED

import fastconv

ALGOS = (*fastconv._core.conv_algos()[1:], "auto")
TOP = Path(__file__).resolve().parent.parent


def _f32(key, *shape):
    return rng_for("process", key, shape).standard_normal(shape).astype(np.float32)


def _ops(scale: int = 1, only: str | None = None) -> dict:
    """name -> zero-argument call returning a tuple of arrays: every op family,
    conv per algorithm. ``scale`` multiplies the batch; ``only`` builds the
    inputs of that one op (the GIL test grows a single op to a long call)."""
    n = 3 * scale
    ops = {}
    if only is None or only.startswith("conv2d"):
        x, w, b = _f32("x", n, 8, 20, 23), _f32("w", 16, 8, 3, 3), _f32("b", 16)
        dy = _f32("dy", n, 16, 20, 23)
        for algo in ALGOS:
            ops[f"conv2d-{algo}"] = lambda algo=algo: (
                fastconv.conv2d(x, w, b, padding=1, algo=algo),
            )
            ops[f"conv2d_backward-{algo}"] = lambda algo=algo: fastconv.conv2d_backward(
                dy, x, w, padding=1, algo=algo
            )
    if only is None or "pool" in only:
        px = _f32("px", n, 8, 33, 35)
        _, idx = fastconv.max_pool2d(px, 3, 2, 1, return_indices=True)
        pdy = _f32("pdy", *idx.shape)
        ady = _f32("ady", n, 8, 17, 18)
        ops["max_pool2d"] = lambda: fastconv.max_pool2d(px, 3, 2, 1, return_indices=True)
        ops["max_pool2d_backward"] = lambda: (fastconv.max_pool2d_backward(pdy, idx, px.shape),)
        ops["avg_pool2d"] = lambda: (fastconv.avg_pool2d(px, 3, 2, 1, True, False),)
        ops["avg_pool2d_backward"] = lambda: (
            fastconv.avg_pool2d_backward(ady, px.shape, 3, 2, 1, True, False),
        )
    if only is None or only == "linear":
        lx, lw, lb = _f32("lx", 13 * n, 300), _f32("lw", 130, 300), _f32("lb", 130)
        ops["linear"] = lambda: (fastconv.linear(lx, lw, lb),)
    return {k: v for k, v in ops.items() if only is None or k == only}


_run = run_child


def _digest(outputs) -> str:
    h = hashlib.sha256()
    for o in outputs:
        h.update(str((o.dtype, o.shape)).encode())
        h.update(o.tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------
# Many Python threads at once
# ---------------------------------------------------------------------------


def test_many_python_threads_match_serial():
    """8 Python threads, each calling every op 25 times (in its own order), at once;
    OpenMP teams of 2 inside each call. Every result is bitwise the serial one."""
    fastconv.set_num_threads(2)
    ops = _ops()
    names = list(ops)
    serial = {name: _digest(op()) for name, op in ops.items()}
    errors, counts = [], [0] * 8
    barrier = threading.Barrier(8)

    def work(t):
        try:
            barrier.wait(timeout=60)
            for i in range(25):
                for j in range(len(names)):
                    name = names[(j + 3 * t + i) % len(names)]
                    got = _digest(ops[name]())
                    if got != serial[name]:
                        errors.append(
                            f"thread {t}, call {i}: {name} differs from the serial result"
                        )
                    counts[t] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {t}: {e!r}")

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, "\n".join(errors[:20])
    assert counts == [25 * len(names)] * 8


# ---------------------------------------------------------------------------
# The GIL is released while kernels run
# ---------------------------------------------------------------------------


def _calibrated(op_factory, target_s=0.1, max_scale=4096):
    """The op at the smallest batch scale (doubling) whose call takes >= target_s."""
    scale = 1
    while True:
        call = op_factory(scale)
        t = time.perf_counter()
        call()
        dt = time.perf_counter() - t
        if dt >= target_s or scale >= max_scale:
            return call, dt
        scale *= 2


def test_gil_released_during_every_op():
    """While one thread runs an op's kernels, a pure-Python counting thread keeps
    running: its ticks cover the call. (With the GIL held it could not tick at all
    between the start and the end of the call.)"""
    fastconv.set_num_threads(1)
    failures = []
    for name in _ops():
        call, _ = _calibrated(lambda s, name=name: _ops(s, only=name)[name])
        ticks, stop = [], threading.Event()

        def count(ticks=ticks, stop=stop):
            n = 0
            while not stop.is_set():
                n += 1
                if n % 200 == 0:
                    ticks.append(time.perf_counter())

        t = threading.Thread(target=count, daemon=True)
        t.start()
        time.sleep(0.02)
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
        stop.set()
        t.join(10)
        inside = [c for c in ticks if t0 < c < t1]
        # The largest stretch of the call with no tick: small if the GIL was released.
        edges = [t0, *inside, t1]
        gap = max(b - a for a, b in zip(edges, edges[1:]))
        if len(inside) < 10 or gap > 0.5 * (t1 - t0):
            failures.append(
                f"{name}: {len(inside)} ticks during a {t1 - t0:.3f}s call, longest gap {gap:.3f}s"
            )
    assert not failures, "the GIL was held during:\n" + "\n".join(failures)


# ---------------------------------------------------------------------------
# fork after OpenMP ran
# ---------------------------------------------------------------------------


def _fork_compute(conn, depth):
    """In a forked process: every op's digest (and, at depth 1, a grandchild's)."""
    try:
        out = {"threads": fastconv.get_num_threads()}
        out["digests"] = {name: _digest(op()) for name, op in _ops().items()}
        if depth == 1:
            ctx = multiprocessing.get_context("fork")
            parent_end, child_end = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_fork_compute, args=(child_end, 2))
            p.start()
            child_end.close()
            if parent_end.poll(120):
                out["grandchild"] = parent_end.recv()
            else:
                out["grandchild"] = {"error": "no answer within 120 s (hung?)"}
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
                out["grandchild"]["error"] = "hung"
        conn.send(out)
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        conn.send({"error": repr(e)})
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork of a multi-threaded process
def test_fork_child_and_grandchild():
    """multiprocessing's "fork" after OpenMP's pool ran (2 threads): the child and its
    own child compute every op bitwise like the parent, single-threaded (libgomp is
    not fork-safe), and never hang."""
    fastconv.set_num_threads(2)
    want = {name: _digest(op()) for name, op in _ops().items()}  # the thread pool has run
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_fork_compute, args=(child_end, 1))
    p.start()
    child_end.close()
    got = parent_end.recv() if parent_end.poll(240) else None
    p.join(30)
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail("the forked child hung")
    assert got is not None, "the forked child sent nothing within 240 s (hung?)"
    assert "error" not in got, got["error"]
    assert p.exitcode == 0
    for who, res in (("child", got), ("grandchild", got.get("grandchild", {}))):
        assert "error" not in res, f"{who}: {res['error']}"
        assert res["threads"] == 1, f"{who} runs {res['threads']} threads after fork"
        diff = [n for n in want if res["digests"].get(n) != want[n]]
        assert not diff, f"{who}: results differ from the parent's for {diff}"
    # And the parent's own pool still works.
    assert {name: _digest(op()) for name, op in _ops().items()} == want


# ---------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------

# The child: builds a long call and a short one of the same op, computes the
# short one (the fresh result), reports "start" and runs the long one; after
# KeyboardInterrupt (or the end) it runs the short one again and reports both
# digests. One JSON object per line on stdout.
CTRL_C_CHILD = textwrap.dedent(
    r"""
    import hashlib, json, sys, time
    import numpy as np
    import fastconv

    which, algo = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)

    def make(n):
        if which.startswith("conv"):  # AlexNet conv2
            x, w = f32(n, 96, 27, 27), f32(256, 96, 5, 5)
            if which == "conv_forward":
                return lambda: (fastconv.conv2d(x, w, padding=2, algo=algo),)
            dy = f32(n, 256, 27, 27)
            return lambda: fastconv.conv2d_backward(dy, x, w, padding=2, algo=algo)
        x = f32(n, 96, 55, 55)
        if which == "max_pool":
            return lambda: fastconv.max_pool2d(x, 11, 1, 5, return_indices=True)
        return lambda: (fastconv.avg_pool2d(x, 21, 1, 10),)

    def digest(outs):
        h = hashlib.sha256()
        for o in outs:
            h.update(o.tobytes())
        return h.hexdigest()

    def say(**kw):
        print(json.dumps(kw), flush=True)

    small, big = make(2), make(int(sys.argv[3]))
    fresh = digest(small())
    say(event="start", t=time.monotonic())
    try:
        big()
        say(event="finished", t=time.monotonic())
    except KeyboardInterrupt:
        say(event="interrupted", t=time.monotonic())
    t = time.monotonic()
    again = digest(small())
    say(event="next_call", fresh=fresh, again=again, seconds=time.monotonic() - t)
    """
)

# Batch sizes that keep each call well over 0.3 s on 2 threads: the GEMM
# path runs AlexNet conv2 at ~300 GFLOP/s (57 GFLOP per forward at N=64).
CTRL_C_CASES = [
    ("conv_backward", "im2col", 128),
    ("conv_backward", "direct", 128),
    ("conv_forward", "im2col", 256),
    ("conv_forward", "direct", 384),  # ~10 ms per image on one thread
    ("max_pool", "-", 64),
    ("avg_pool", "-", 64),
]


# Python runs the SIGINT handler when fastconv polls between tasks (one image of
# im2col, one plane of the direct kernels): within ~20 ms plus one task. Under
# ASan one im2col task of AlexNet conv2 alone takes ~1 s.
MAX_LATENCY = 3.0 if SANITIZED else 0.5


def _event_reader(proc) -> queue.Queue:
    """A queue of the child's JSON lines (None at the end of its output)."""
    q: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            if line.strip():
                q.put(json.loads(line))
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def _read_event(q, timeout):
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        return None


@pytest.mark.parametrize(
    "which, algo, n", CTRL_C_CASES, ids=[w if a == "-" else f"{w}-{a}" for w, a, _ in CTRL_C_CASES]
)
def test_ctrl_c(which, algo, n):
    """SIGINT 0.3 s into a multi-second call (>= 2 s on one thread): KeyboardInterrupt
    within 0.5 s of the signal (3 s under ASan), then the next call in the same process is bitwise
    equal to a fresh computation (made before the interrupted call)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_CHILD, which, algo, str(n)],
        cwd=CHILD_CWD,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events = _event_reader(proc)
    try:
        start = _read_event(events, 120)
        assert start and start["event"] == "start", f"child did not start: {proc.stderr.read()}"
        time.sleep(0.3)
        t_signal = time.monotonic()
        proc.send_signal(signal.SIGINT)
        ev = _read_event(events, 60)
        assert ev is not None, "no answer within 60 s of SIGINT"
        assert ev["event"] == "interrupted", (
            f"the call was not interrupted ({ev['event']} {ev['t'] - start['t']:.2f}s after "
            "the start): it must run longer than 0.3 s for this test"
        )
        latency = ev["t"] - t_signal
        assert latency < MAX_LATENCY, f"KeyboardInterrupt {latency:.3f}s after SIGINT"
        nxt = _read_event(events, 120)
        assert nxt is not None and nxt["event"] == "next_call", "no next call"
        assert nxt["again"] == nxt["fresh"], "the call after the interrupt gives another result"
        assert proc.wait(60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------
# Resident memory over many calls
# ---------------------------------------------------------------------------

RSS_CHILD = textwrap.dedent(
    r"""
    import gc, json, os
    import numpy as np
    import fastconv

    PAGE = os.sysconf("SC_PAGE_SIZE")
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE

    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    x, w, b, dy = f32(2, 3, 8, 9), f32(4, 3, 3, 3), f32(4), f32(2, 4, 8, 9)
    px = f32(2, 3, 9, 10)
    _, idx = fastconv.max_pool2d(px, 3, 2, 1, return_indices=True)
    pdy = f32(*idx.shape)
    ady = fastconv.avg_pool2d(px, 3, 2, 1)
    bad_idx = idx.copy(); bad_idx[0, 0, 0, 0] = 10**6
    lx, lw, lb = f32(5, 33), f32(17, 33), f32(17)
    xf = np.asfortranarray(x)

    def expect(exc, fn):
        def call():
            try:
                fn()
            except exc:
                return
            raise AssertionError("no error")
        return call

    ops = {}
    for algo in ("direct", "im2col", "auto"):
        ops[f"conv2d-{algo}"] = lambda algo=algo: fastconv.conv2d(x, w, b, padding=1, algo=algo)
        ops[f"conv2d_backward-{algo}"] = lambda algo=algo: fastconv.conv2d_backward(dy, x, w, padding=1, algo=algo)
    ops["conv2d-copied-input"] = lambda: fastconv.conv2d(xf, w, b, padding=1)
    ops["max_pool2d"] = lambda: fastconv.max_pool2d(px, 3, 2, 1, return_indices=True)
    ops["max_pool2d_backward"] = lambda: fastconv.max_pool2d_backward(pdy, idx, px.shape)
    ops["avg_pool2d"] = lambda: fastconv.avg_pool2d(px, 3, 2, 1)
    ops["avg_pool2d_backward"] = lambda: fastconv.avg_pool2d_backward(ady, px.shape, 3, 2, 1)
    ops["linear"] = lambda: fastconv.linear(lx, lw, lb)
    ops["error-bad-indices"] = expect(ValueError, lambda: fastconv.max_pool2d_backward(pdy, bad_idx, px.shape))
    ops["error-dtype"] = expect(TypeError, lambda: fastconv.conv2d(x.astype(np.float64), w))
    ops["error-shape"] = expect(ValueError, lambda: fastconv.conv2d(xf, f32(4, 2, 3, 3)))
    ops["error-overflow"] = expect(ValueError, lambda: fastconv.conv2d(x, w, padding=2**30))

    for op in ops.values():  # every workspace at its size
        for _ in range(100):
            op()
    for name, op in ops.items():
        for _ in range(1000):
            op()
        gc.collect()
        r0 = rss()
        for _ in range(10000):
            op()
        gc.collect()
        print(json.dumps({"op": name, "growth": rss() - r0}), flush=True)
    """
)


@pytest.mark.skipif(SANITIZED, reason="ASan's allocator and shadow memory make RSS meaningless")
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm")
def test_resident_memory_is_flat():
    """10,000 calls of each op (small shapes; also a copied input and the error
    paths) after 1,000 warm-up calls: resident memory grows by less than 2 MiB."""
    r = _run([sys.executable, "-c", RSS_CHILD], 300, OMP_NUM_THREADS="2")
    assert r.returncode == 0, r.stderr[-3000:]
    growth = {d["op"]: d["growth"] for d in map(json.loads, r.stdout.split("\n")[:-1])}
    assert len(growth) == 16, growth
    leaky = {k: f"{v / 2**20:.2f} MiB" for k, v in growth.items() if v >= 2 * 2**20}
    assert not leaky, f"RSS grew over 10,000 calls: {leaky} (all: {growth})"


# ---------------------------------------------------------------------------
# valgrind
# ---------------------------------------------------------------------------

HAVE_VALGRIND = shutil.which("valgrind") is not None


@pytest.mark.skipif(not HAVE_VALGRIND, reason="valgrind is not installed")
@pytest.mark.skipif(SANITIZED, reason="valgrind cannot run an ASan build")
def test_import_on_a_cpu_without_avx512():
    """valgrind's virtual CPU has no AVX-512 (and cannot decode it): importing
    fastconv and running an op there must work, as on any CPU without AVX-512.
    (Dispatch must not execute an instruction of an ISA the CPU lacks, not even
    to fill the kernel table of that ISA.)"""
    code = (
        "import numpy as np, fastconv;"
        "print(fastconv.show_config()['isa_active']);"
        "print(fastconv.conv2d(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32)).sum())"
    )
    r = _run(["valgrind", "--tool=none", "--error-exitcode=0", sys.executable, "-c", code], 300)
    where = [
        line
        for line in r.stderr.splitlines()
        if "unhandled instruction" in line or " at 0x" in line
    ]
    assert r.returncode == 0, (
        f"fastconv dies on a CPU without AVX-512 (exit {r.returncode}): " + " | ".join(where[:3])
    )
    assert r.stdout.split() == ["avx2", "36.0"], r.stdout


@pytest.mark.skipif(not HAVE_VALGRIND, reason="valgrind is not installed")
@pytest.mark.skipif(SANITIZED, reason="valgrind cannot run an ASan build")
@pytest.mark.skipif(
    not (shutil.which("cmake") and shutil.which("ninja") and importlib.util.find_spec("pybind11")),
    reason="tools/valgrind.sh builds build/valgrind: needs cmake, ninja and pybind11",
)
def test_valgrind_memcheck():
    """tools/valgrind.sh: every op, algorithm and ISA valgrind can run, under memcheck;
    no invalid read or write, no use of uninitialised memory in fastconv's code."""
    r = _run(["bash", str(TOP / "tools" / "valgrind.sh")], 1200, PYTHON=sys.executable)
    report = r.stdout[-6000:] + "\n" + r.stderr[-3000:]
    assert r.returncode == 0, f"tools/valgrind.sh exit {r.returncode}:\n{report}"
    assert "0 involving fastconv's code" in r.stdout, report
