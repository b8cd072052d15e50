# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Cython baseline of fastconv's ops: what a competent Python user would write.

This module is a *baseline* for ``fastconv bench`` (the ``cython`` contender),
not part of fastconv's own ops: ``algo="auto"`` never uses it. It answers the
question "how much faster is fastconv than straightforward compiled loops?".
The loops are the textbook ones over typed memoryviews, float32, NCHW:

* no manual SIMD, no blocking or packing, no im2col: the C++ compiler
  vectorises what it can on its own, at the x86-64 baseline (no -march);
* parallel over the batch with ``prange`` (OpenMP, without the GIL); the
  weight gradient, a reduction over the batch, is parallel over the output
  channels K instead, so every output element is summed by one thread in a
  fixed order and results are bitwise identical for any thread count
  (fastconv's rule);
* float32 accumulators, like fastconv's kernels.

The functions here take validated, C-contiguous float32 arrays, explicit
geometry and preallocated outputs; every check (dtypes, shapes, parameters,
output sizes) is done in Python by ``fastconv/_strategy_cython.py`` with the
reference's geometry helpers, so the errors read like the reference's.

Shape letters (as in the C++ kernels): x is (N,C,H,W), w is (K,C/G,R,S),
y is (N,K,P,Q); G groups, Cg = C/G and Kg = K/G channels per group.
Each function says whether it overwrites (``=``) its output.
"""

from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t


def conv2d_forward(
    float[:, :, :, ::1] y,
    const float[:, :, :, ::1] x,
    const float[:, :, :, ::1] w,
    const float[::1] b,
    int has_bias,
    Py_ssize_t sh, Py_ssize_t sw,
    Py_ssize_t pad_top, Py_ssize_t pad_left,
    Py_ssize_t dh, Py_ssize_t dw,
    Py_ssize_t G,
    int num_threads,
):
    """y = conv2d(x, w) + b: x is (N,C,H,W), w is (K,C/G,R,S), b is (K,), y is (N,K,P,Q).

    One thread per image n; each output element is a float32 sum over (c, r, s)
    in that order, starting from the bias (or 0).
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = w.shape[0], Cg = w.shape[1], R = w.shape[2], S = w.shape[3]
    cdef Py_ssize_t P = y.shape[2], Q = y.shape[3]
    cdef Py_ssize_t Kg = K // G
    cdef Py_ssize_t n, k, c, p, q, r, s, h, ww, c0
    cdef float acc
    for n in prange(N, nogil=True, num_threads=num_threads, schedule="static"):
        for k in range(K):
            c0 = (k // Kg) * Cg  # first input channel of k's group
            for p in range(P):
                for q in range(Q):
                    acc = b[k] if has_bias else 0.0
                    for c in range(Cg):
                        for r in range(R):
                            h = p * sh - pad_top + r * dh
                            if h < 0 or h >= H:
                                continue
                            for s in range(S):
                                ww = q * sw - pad_left + s * dw
                                if ww >= 0 and ww < W:
                                    acc = acc + x[n, c0 + c, h, ww] * w[k, c, r, s]
                    y[n, k, p, q] = acc


def conv2d_backward_input(
    float[:, :, :, ::1] dx,
    const float[:, :, :, ::1] dy,
    const float[:, :, :, ::1] w,
    Py_ssize_t sh, Py_ssize_t sw,
    Py_ssize_t pad_top, Py_ssize_t pad_left,
    Py_ssize_t dh, Py_ssize_t dw,
    Py_ssize_t G,
    int num_threads,
):
    """dx = conv2d_backward_input(dy, w): dy is (N,K,P,Q), w is (K,C/G,R,S), dx is (N,C,H,W).

    One thread per image n: dx[n] is zeroed, then every dy[n, k, p, q] * w[k, c, r, s]
    is scattered (+=) into the input pixel that tap read, in (k, p, q, c, r, s)
    order. Images do not overlap, so the order never depends on the threads.
    """
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t K = w.shape[0], Cg = w.shape[1], R = w.shape[2], S = w.shape[3]
    cdef Py_ssize_t P = dy.shape[2], Q = dy.shape[3]
    cdef Py_ssize_t Kg = K // G
    cdef Py_ssize_t n, k, c, p, q, r, s, h, ww, c0
    cdef float g
    for n in prange(N, nogil=True, num_threads=num_threads, schedule="static"):
        for c in range(C):
            for h in range(H):
                for ww in range(W):
                    dx[n, c, h, ww] = 0.0
        for k in range(K):
            c0 = (k // Kg) * Cg
            for p in range(P):
                for q in range(Q):
                    g = dy[n, k, p, q]
                    for c in range(Cg):
                        for r in range(R):
                            h = p * sh - pad_top + r * dh
                            if h < 0 or h >= H:
                                continue
                            for s in range(S):
                                ww = q * sw - pad_left + s * dw
                                if ww >= 0 and ww < W:
                                    dx[n, c0 + c, h, ww] += g * w[k, c, r, s]


def conv2d_backward_weight(
    float[:, :, :, ::1] dw_out,
    float[::1] db,
    int want_weight,
    int want_bias,
    const float[:, :, :, ::1] dy,
    const float[:, :, :, ::1] x,
    Py_ssize_t R, Py_ssize_t S,
    Py_ssize_t sh, Py_ssize_t sw,
    Py_ssize_t pad_top, Py_ssize_t pad_left,
    Py_ssize_t dh, Py_ssize_t dw,
    Py_ssize_t G,
    int num_threads,
):
    """dw = conv2d_backward_weight(dy, x), db = sum of dy over (n, p, q).

    dy is (N,K,P,Q), x is (N,C,H,W), dw is (K,C/G,R,S), db is (K,); each is
    written (=) only when wanted (else it may be None). One thread per output
    channel k: each element is a float32 sum over (n, p, q) in that order, so
    the result does not depend on the thread count (no reduction across threads).
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = dy.shape[1], P = dy.shape[2], Q = dy.shape[3]
    cdef Py_ssize_t Cg = C // G, Kg = K // G
    cdef Py_ssize_t n, k, c, p, q, r, s, h, ww, c0
    cdef float acc
    for k in prange(K, nogil=True, num_threads=num_threads, schedule="static"):
        if want_bias:
            acc = 0.0
            for n in range(N):
                for p in range(P):
                    for q in range(Q):
                        acc = acc + dy[n, k, p, q]
            db[k] = acc
        if want_weight:
            c0 = (k // Kg) * Cg
            for c in range(Cg):
                for r in range(R):
                    for s in range(S):
                        acc = 0.0
                        for n in range(N):
                            for p in range(P):
                                h = p * sh - pad_top + r * dh
                                if h < 0 or h >= H:
                                    continue
                                for q in range(Q):
                                    ww = q * sw - pad_left + s * dw
                                    if ww >= 0 and ww < W:
                                        acc = acc + dy[n, k, p, q] * x[n, c0 + c, h, ww]
                        dw_out[k, c, r, s] = acc


def max_pool2d_forward(
    float[:, :, :, ::1] y,
    int64_t[:, :, :, ::1] idx,
    const float[:, :, :, ::1] x,
    Py_ssize_t R, Py_ssize_t S,
    Py_ssize_t sh, Py_ssize_t sw,
    Py_ssize_t ph, Py_ssize_t pw,
    Py_ssize_t dh, Py_ssize_t dw,
    int num_threads,
):
    """y, idx = max_pool2d(x): x is (N,C,H,W), y and idx are (N,C,P,Q) (=).

    PyTorch's CPU rule, as the reference states it: each window is scanned in
    row-major order over its in-bounds taps from max = -inf and index = the
    first in-bounds tap (the window start advanced by whole dilation steps);
    a tap wins when ``val > max`` or val is NaN. idx is ``h*W + w``.
    One thread per image n.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t P = y.shape[2], Q = y.shape[3]
    cdef Py_ssize_t n, c, p, q, r, s, h, ww, h0, w0
    cdef int64_t best_i
    cdef float best, val
    for n in prange(N, nogil=True, num_threads=num_threads, schedule="static"):
        for c in range(C):
            for p in range(P):
                h0 = p * sh - ph
                for q in range(Q):
                    w0 = q * sw - pw
                    best = -INFINITY
                    # the first in-bounds tap (the start, moved forward by whole steps)
                    h = h0 + ((-h0 + dh - 1) // dh) * dh if h0 < 0 else h0
                    ww = w0 + ((-w0 + dw - 1) // dw) * dw if w0 < 0 else w0
                    best_i = h * W + ww
                    for r in range(R):
                        h = h0 + r * dh
                        if h < 0 or h >= H:
                            continue
                        for s in range(S):
                            ww = w0 + s * dw
                            if ww < 0 or ww >= W:
                                continue
                            val = x[n, c, h, ww]
                            if val > best or val != val:  # val != val: NaN wins
                                best = val
                                best_i = h * W + ww
                    y[n, c, p, q] = best
                    idx[n, c, p, q] = best_i


def max_pool2d_backward(
    float[:, :, ::1] dx,
    const float[:, :, ::1] dy,
    const int64_t[:, :, ::1] idx,
    int num_threads,
):
    """dx = max_pool2d_backward(dy, idx): dy and idx are (N,C,P*Q), dx is (N,C,H*W) (=).

    dx[n] is zeroed, then ``dx[n, c, idx[n, c, i]] += dy[n, c, i]`` in (c, i)
    order (PyTorch's). The caller has checked every index lies in [0, H*W).
    One thread per image n.
    """
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], HW = dx.shape[2], PQ = dy.shape[2]
    cdef Py_ssize_t n, c, i
    for n in prange(N, nogil=True, num_threads=num_threads, schedule="static"):
        for c in range(C):
            for i in range(HW):
                dx[n, c, i] = 0.0
            for i in range(PQ):
                dx[n, c, idx[n, c, i]] += dy[n, c, i]
