"""What the caller's process does around a call: signal handlers that call
fastconv (or raise, or change the thread count) in the middle of an op, the
caller's floating-point mode, and who sets the thread count (threadpoolctl,
omp_set_num_threads, fork).

* ``test_signal_handler_during_op``: a SIGALRM timer fires every few ms while
  every op runs (1 and 2 threads); fastconv runs Python's handler from its
  interrupt poll, in the middle of the op. The handler calls other ops with
  larger workspaces (``reenter``), raises KeyboardInterrupt (``interrupt``),
  or flips the thread count (``set_threads``). The outer result is bitwise the
  quiet one; so are the nested results; an interrupted op raises and the
  next call is exact.
* ``test_caller_fp_mode_reaches_the_workers``: the caller switches to
  round-upward, or to flush-to-zero + denormals-are-zero, after OpenMP's
  workers started; every op then gives the same bits at 1 and 2 threads and
  over reruns (the workers compute in the caller's mode).
* ``test_threadpoolctl_and_omp_set_num_threads``: fastconv's thread count is
  OpenMP's setting, so threadpoolctl reports and limits it.
* ``test_set_num_threads_in_a_child_forked_before_any_op``.
* ``test_contention_falls_back_to_one_thread``: with every core busy with
  another process, 2-thread ops fall back to one thread (same results); not
  with the fallback switched off.

Each runs in a child process: timers, signal handlers and the floating-point
mode stay out of the test process, and a crash fails one test.
"""

from __future__ import annotations

import json
import platform
import sys
import textwrap

import pytest
from child import run_child
from conftest import SANITIZED

# The ops of the child scripts: OUTER and NESTED map names to zero-argument
# callables returning a tuple of arrays. Outer calls take 3-90 ms on one
# thread, and the child polls for signals every 1 ms (not 20) during an op, so
# handlers run inside every one; the nested calls need larger workspaces of
# every kind than the outer ones (an im2col column buffer, packed weights,
# GEMM panels, weight-gradient partials).
OPS = textwrap.dedent(
    r"""
    import hashlib, json, signal, sys, time
    import numpy as np
    import fastconv as fc
    from fastconv import _core
    _core._set_interrupt_poll_ms(1)

    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)

    def digest(outs):
        h = hashlib.sha256()
        for o in outs:
            h.update(o.tobytes())
        return h.hexdigest()

    x, w, dy = f32(16, 32, 24, 24), f32(32, 32, 3, 3), f32(16, 32, 24, 24)
    px = f32(32, 32, 64, 64)
    _, idx = fc.max_pool2d(px, 3, 2, 1, return_indices=True)
    pdy = f32(*idx.shape)
    lx, lw, ldy = f32(512, 1024), f32(1024, 1024), f32(512, 1024)
    ga, gb = f32(768, 768), f32(768, 768)

    OUTER = {}
    for algo in ("im2col", "direct"):
        OUTER[f"conv2d-{algo}"] = lambda a=algo: (fc.conv2d(x, w, padding=1, algo=a),)
        OUTER[f"conv2d_backward-{algo}"] = lambda a=algo: fc.conv2d_backward(dy, x, w, padding=1, algo=a)
    OUTER["linear"] = lambda: (fc.linear(lx, lw),)
    OUTER["linear_backward"] = lambda: fc.linear_backward(ldy, lx, lw)
    OUTER["sgemm"] = lambda: (_core.sgemm(ga, gb),)
    OUTER["max_pool2d"] = lambda: fc.max_pool2d(px, 3, 2, 1, return_indices=True)
    OUTER["max_pool2d_backward"] = lambda: (fc.max_pool2d_backward(pdy, idx, px.shape),)
    OUTER["avg_pool2d"] = lambda: (fc.avg_pool2d(px, 5, 1, 2),)
    OUTER["avg_pool2d_backward"] = lambda: (fc.avg_pool2d_backward(px, px.shape, 5, 1, 2),)

    nx, nw, ndy = f32(4, 64, 40, 40), f32(16, 64, 5, 5), f32(4, 16, 40, 40)
    na, nb = f32(64, 4096), f32(4096, 4096)
    NESTED = {
        "conv2d_backward": lambda: fc.conv2d_backward(ndy, nx, nw, padding=2, algo="im2col"),
        "linear": lambda: (fc.linear(na, nb),),
    }
    """
)

SIGNAL_CHILD = OPS + textwrap.dedent(
    r"""
    threads, kind = int(sys.argv[1]), sys.argv[2]
    fc.set_num_threads(threads)
    want = {n: digest(f()) for n, f in OUTER.items()}
    want_nested = {n: digest(f()) for n, f in NESTED.items()}
    state = {"running": False, "calls": 0, "bad_nested": [], "in_handler": False}

    def handler(signum, frame):
        # The timer keeps firing while a handler runs, and Python would run
        # the handler again between the handler's own bytecodes: not that.
        if not state["running"] or state["in_handler"]:
            return
        state["in_handler"] = True
        try:
            state["calls"] += 1
            if kind == "reenter" and state["calls"] <= 3:  # a few nested rounds per op are enough
                for n, f in NESTED.items():
                    if digest(f()) != want_nested[n]:
                        state["bad_nested"].append(n)
            elif kind == "interrupt":
                raise KeyboardInterrupt
            elif kind == "set_threads":
                fc.set_num_threads(1 if state["calls"] % 2 else 2)
        finally:
            state["in_handler"] = False

    signal.signal(signal.SIGALRM, handler)
    for name, f in OUTER.items():
        state.update(running=False, calls=0, bad_nested=[])
        signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
        outcome = "finished"
        t0 = time.perf_counter()
        try:
            state["running"] = True
            got = digest(f())
            state["running"] = False
        except KeyboardInterrupt:
            state["running"] = False
            outcome = "interrupted"
            got = None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
        seconds = time.perf_counter() - t0
        threads_after = fc.get_num_threads()
        fc.set_num_threads(threads)
        again = digest(f())
        print(json.dumps({"op": name, "outcome": outcome, "handler_calls": state["calls"],
                          "exact": got == want[name], "again_exact": again == want[name],
                          "bad_nested": state["bad_nested"], "threads_after": threads_after,
                          "expected_threads_after": (1 if state["calls"] % 2 else 2) if state["calls"] else threads,
                          "seconds": seconds}), flush=True)
    """
)


def _run_child(script: str, *args: str, timeout: float = 600, **env: str) -> list[dict]:
    """Run ``python -c script *args`` (environment: :func:`child_env` with ``env``);
    assert it exits 0 and return its JSON output lines."""
    proc = run_child([sys.executable, "-c", script, *args], timeout, **env)
    assert proc.returncode == 0, (
        f"child exited with {proc.returncode} (a negative code is a signal: -11 SIGSEGV)\n"
        f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["reenter", "interrupt", "set_threads"])
def test_signal_handler_during_op(kind, threads):
    """A SIGALRM handler runs inside every op (from fastconv's interrupt poll) and
    calls fastconv, raises, or changes the thread count: no crash, exact results."""
    rows = _run_child(SIGNAL_CHILD, str(threads), kind)
    assert len(rows) == 11, rows
    problems = []
    for r in rows:
        op = r["op"]
        if not r["again_exact"]:
            problems.append(f"{op}: the call after the handlers gives another result")
        if kind == "interrupt":
            if r["outcome"] != "interrupted":
                problems.append(f"{op}: not interrupted ({r['seconds']:.3f} s, too short?)")
            continue
        if r["handler_calls"] < 1:
            problems.append(f"{op}: the handler ran {r['handler_calls']} times during the call")
        if r["outcome"] != "finished" or not r["exact"]:
            problems.append(f"{op}: {r['outcome']}, exact={r['exact']}")
        if r["bad_nested"]:
            problems.append(f"{op}: nested calls gave wrong results: {r['bad_nested']}")
        if kind == "set_threads" and r["threads_after"] != r["expected_threads_after"]:
            problems.append(
                f"{op}: the handler's last set_num_threads({r['expected_threads_after']}) "
                f"was lost: get_num_threads() = {r['threads_after']}"
            )
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# The caller's floating-point mode
# ---------------------------------------------------------------------------

FP_CHILD = OPS + textwrap.dedent(
    r"""
    import ctypes
    libm = ctypes.CDLL("libm.so.6")
    FE_TONEAREST, FE_UPWARD = 0x000, 0x800          # x86-64 glibc
    mode = sys.argv[1]

    def set_mode():
        if mode == "upward":
            assert libm.fesetround(FE_UPWARD) == 0
        else:  # FTZ and DAZ in MXCSR (bits 15 and 6): what -Ofast's crtfastmath.o sets
            env = (ctypes.c_uint32 * 8)()          # glibc's x86-64 fenv_t: 32 bytes, MXCSR last
            assert libm.fegetenv(env) == 0
            env[7] |= 0x8040
            assert libm.fesetenv(env) == 0

    tiny = np.full((4, 16, 48, 48), 3e-39, np.float32)  # subnormal
    OUTER["avg_pool2d_subnormal"] = lambda: (fc.avg_pool2d(tiny, 2),)
    OUTER["conv2d_subnormal"] = lambda: (fc.conv2d(tiny, np.full((8, 16, 3, 3), 0.5, np.float32)),)

    fc.set_num_threads(2)
    default = {n: digest(f()) for n, f in OUTER.items()}  # the workers exist now
    set_mode()
    for name, f in OUTER.items():
        runs = {}
        for threads in (1, 2, 2, 2, 1, 2):
            fc.set_num_threads(threads)
            runs.setdefault(threads, set()).add(digest(f()))
        print(json.dumps({"op": name, "one": sorted(runs[1]), "two": sorted(runs[2]),
                          "changed_by_mode": sorted(runs[1])[0] != default[name]}), flush=True)
    """
)


@pytest.mark.skipif(
    not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")),
    reason="sets the x86-64 glibc floating-point environment through ctypes",
)
@pytest.mark.parametrize("mode", ["upward", "ftz_daz"])
def test_caller_fp_mode_reaches_the_workers(mode):
    """After OpenMP's workers started, the caller switches its rounding mode (or
    FTZ/DAZ): results at 2 threads equal those at 1 thread, bit for bit, every run."""
    rows = _run_child(FP_CHILD, mode)
    assert len(rows) == 13, rows
    problems = [
        f"{r['op']}: 1 thread {r['one']}, 2 threads {r['two']}"
        for r in rows
        if len(r["one"]) != 1 or r["one"] != r["two"]
    ]
    assert not problems, "results depend on the thread count:\n" + "\n".join(problems)
    # The mode really applies (otherwise this test proves nothing).
    changed = {r["op"] for r in rows if r["changed_by_mode"]}
    if mode == "upward":
        assert {"conv2d-im2col", "linear", "sgemm", "avg_pool2d"} <= changed, changed
    else:
        assert {"avg_pool2d_subnormal", "conv2d_subnormal"} <= changed, changed


# ---------------------------------------------------------------------------
# Who sets the thread count
# ---------------------------------------------------------------------------

THREADPOOL_CHILD = textwrap.dedent(
    r"""
    import ctypes, json
    import numpy as np
    import fastconv as fc
    from threadpoolctl import threadpool_info, threadpool_limits

    def omp_threads():
        libs = [p for p in threadpool_info() if p["user_api"] == "openmp"]
        return [p["num_threads"] for p in libs], [p["filepath"] for p in libs]

    x, w = np.ones((4, 3, 16, 16), np.float32), np.ones((8, 3, 3, 3), np.float32)
    out = {}
    fc.set_num_threads(2)
    fc.conv2d(x, w)  # fastconv has run
    fc.set_num_threads(1)
    out["info_after_set_1"], paths = omp_threads()
    fc.set_num_threads(2)
    out["info_after_set_2"], _ = omp_threads()
    fc.conv2d(x, w)
    with threadpool_limits(limits=1, user_api="openmp"):
        out["inside_limits"] = fc.get_num_threads()
        fc.conv2d(x, w)
    out["after_limits"] = fc.get_num_threads()
    gomp = ctypes.CDLL(paths[0])  # another library calling the shared runtime
    gomp.omp_set_num_threads(1)
    out["after_omp_set_num_threads"] = fc.get_num_threads()
    print(json.dumps(out))
    """
)


def test_threadpoolctl_and_omp_set_num_threads():
    """fastconv's count is OpenMP's setting: threadpoolctl reports what
    fc.set_num_threads set, and threadpool_limits / omp_set_num_threads limit fastconv."""
    pytest.importorskip("threadpoolctl")
    (out,) = _run_child(THREADPOOL_CHILD)
    assert out["info_after_set_1"] and set(out["info_after_set_1"]) == {1}, out
    assert set(out["info_after_set_2"]) == {2}, out
    assert out["inside_limits"] == 1, out
    assert out["after_limits"] == 2, out
    assert out["after_omp_set_num_threads"] == 1, out


FORK_CHILD = textwrap.dedent(
    r"""
    import json, os
    import numpy as np
    import fastconv as fc

    x, w = np.ones((4, 3, 16, 16), np.float32), np.ones((8, 3, 3, 3), np.float32)
    r, wfd = os.pipe()
    pid = os.fork()  # before any op: no OpenMP thread exists yet
    if pid == 0:
        fc.set_num_threads(2)
        n = fc.get_num_threads()
        y = fc.conv2d(x, w)
        os.write(wfd, json.dumps({"threads": n, "ok": bool((y == 27).all())}).encode())
        os._exit(0)
    os.close(wfd)
    _, status = os.waitpid(pid, 0)
    child = json.loads(os.read(r, 1000))
    # And after this process ran a team, a child stays on one thread.
    fc.set_num_threads(2)
    fc.conv2d(x, w)
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        fc.set_num_threads(2)
        os.write(w2, json.dumps({"threads": fc.get_num_threads(),
                                 "ok": bool((fc.conv2d(x, w) == 27).all())}).encode())
        os._exit(0)
    os.close(w2)
    os.waitpid(pid, 0)
    late = json.loads(os.read(r2, 1000))
    print(json.dumps({"early": child, "late": late}))
    """
)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_set_num_threads_in_a_child_forked_before_any_op():
    """A child forked before the first op can use threads (libgomp's pool does not
    exist yet); one forked after a threaded op stays on one thread (it would hang)."""
    (out,) = _run_child(FORK_CHILD, timeout=120)
    assert out["early"] == {"threads": 2, "ok": True}, out
    assert out["late"] == {"threads": 1, "ok": True}, out


@pytest.mark.skipif(SANITIZED, reason="timing-free, but ASan makes the child minutes long")
def test_nested_call_from_a_handler_uses_its_own_workspace_under_load():
    """The issue's reproducer: a 12 ms timer whose handler runs a large linear while
    a large linear runs (it crashed with SIGSEGV when both shared a workspace)."""
    script = textwrap.dedent(
        r"""
        import signal, numpy as np, fastconv as fc
        x = np.ones((1024, 4096), np.float32); w = np.ones((2048, 4096), np.float32)
        a = np.ones((64, 4096), np.float32);   b = np.ones((8192, 4096), np.float32)
        signal.signal(signal.SIGALRM, lambda s, f: fc.linear(a, b))
        for threads in (1, 2):
            fc.set_num_threads(threads)
            signal.setitimer(signal.ITIMER_REAL, 0.012)
            y = fc.linear(x, w)
            assert (y == 4096).all()
        print('{"ok": true}')
        """
    )
    assert _run_child(script) == [{"ok": True}]


# ---------------------------------------------------------------------------
# Contention: one thread while other runnable threads keep ours off the cores
# ---------------------------------------------------------------------------

CONTENTION_CHILD = textwrap.dedent(
    r"""
    import hashlib, json, os, subprocess, sys, time
    import numpy as np
    import fastconv as fc
    from fastconv import _core

    adaptive = sys.argv[1] == "on"
    _core._set_adaptive_threads(adaptive)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((32, 32, 16, 16), np.float32), rng.standard_normal((32, 32, 3, 3), np.float32)
    digest = lambda a: hashlib.sha256(a.tobytes()).hexdigest()
    fc.set_num_threads(2)
    want = digest(fc.conv2d(x, w, padding=1))
    # As many spinning processes as CPUs: every core has another runnable thread.
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(len(os.sched_getaffinity(0)))]
    try:
        time.sleep(0.2)
        t_end, calls, solo, exact = time.monotonic() + (10 if adaptive else 3), 0, False, True
        while time.monotonic() < t_end and not solo:
            exact &= digest(fc.conv2d(x, w, padding=1)) == want
            calls += 1
            solo = _core._contention_state()["solo_for_ms"] > 0
        state = _core._contention_state()
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    print(json.dumps({"episodes": state["episodes"],
                      "solo": solo, "calls": calls, "exact": exact,
                      "threads": fc.get_num_threads()}))
    """
)


@pytest.mark.skipif(
    not __import__("os").path.exists("/proc/thread-self/schedstat"),
    reason="the contention fallback reads the kernel's run-queue delay (Linux schedstat)",
)
@pytest.mark.parametrize("adaptive", ["on", "off"])
def test_contention_falls_back_to_one_thread(adaptive):
    """With every core busy with another process, 2-thread ops see their threads
    wait for a core and fall back to one thread (results unchanged); with the
    fallback switched off (FASTCONV_ADAPTIVE_THREADS=0) they never do."""
    (out,) = _run_child(CONTENTION_CHILD, adaptive)
    assert out["exact"], out
    assert out["threads"] == 2, out  # the setting is untouched; only regions shrink
    if adaptive == "on":
        assert out["solo"] and out["episodes"] >= 1, out
    else:
        assert not out["solo"] and out["episodes"] == 0, out


def test_import_leaves_the_environment_alone():
    """fastconv shortens GNU OpenMP's idle spin while its extension loads
    (GOMP_SPINCOUNT), then removes the variable; a user's own setting stays."""
    script = textwrap.dedent(
        r"""
        import json, os
        import fastconv
        print(json.dumps({"GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT")}))
        """
    )
    assert _run_child(script) == [{"GOMP_SPINCOUNT": None}]
    assert _run_child(script, timeout=120, GOMP_SPINCOUNT="5") == [{"GOMP_SPINCOUNT": "5"}]


WORKSPACE_CHILD = textwrap.dedent(
    r"""
    import json
    import numpy as np
    import fastconv as fc
    from fastconv import _core

    fc.set_num_threads(2)
    x = np.random.rand(8, 64, 20, 20).astype(np.float32)
    w = np.random.rand(64, 64, 3, 3).astype(np.float32)
    y = fc.conv2d(x, w, padding=1, algo="im2col")
    held = _core.workspace_bytes()["current"]
    fc.release_workspace()
    after = _core.workspace_bytes()["current"]
    again = fc.conv2d(x, w, padding=1, algo="im2col")
    print(json.dumps({"held": held, "after": after, "same": bool((again == y).all()),
                      "held_again": _core.workspace_bytes()["current"]}))
    """
)


def test_release_workspace_frees_every_thread():
    """Workspaces are kept across calls; release_workspace() frees those of the
    calling thread and of both OpenMP workers, and the next call still works."""
    (out,) = _run_child(WORKSPACE_CHILD)
    assert out["held"] > 0 and out["held_again"] > 0, out
    assert out["after"] == 0, out
    assert out["same"], out


def test_implicit_needs_less_workspace_than_im2col_on_large_images():
    """AlexNet conv2's patches (2,400 x 729 per image): im2col holds one
    image's column buffer per thread (7 MB), implicit blocks of MC pixels."""
    import numpy as np

    import fastconv
    from fastconv import _core

    x = np.ones((2, 96, 27, 27), np.float32)
    w = np.ones((256, 96, 5, 5), np.float32)
    peak = {}
    for algo in ("im2col", "implicit"):
        fastconv.release_workspace()
        _core._reset_workspace_peak()
        fastconv.conv2d(x, w, padding=2, algo=algo)
        peak[algo] = _core.workspace_bytes()["peak"]
    assert 0 < peak["implicit"] < peak["im2col"] / 2, peak
