// Pooling kernels (generic bodies), one (n, c) plane per call, with
// PyTorch's semantics. x is (H,W), y and idx are (P,Q); window (p, q) covers
// rows p*stride_h - pad_h + r*dil_h and columns q*stride_w - pad_w + s*dil_w.
// Positions outside the input are skipped (never selected, never summed).
// Covered by tests/test_pool2d.py (exact equality with fastconv.reference).

namespace fastconv {
namespace FASTCONV_ISA_NS {

// Max pooling, PyTorch's NCHW CPU rule: start from -inf and the first
// in-bounds position, take a value when it is greater or NaN. So ties keep
// the first maximum in row-major window order and the last NaN wins.

// One window that may hang over the edges (bounds computed per window).
static inline void max_window_clipped(float* y, int64_t* idx, const float* x, const Pool2dParams& p,
                                      int64_t h0, int64_t w0) {
  const int64_t r_lo = first_in_range(h0, p.dil_h);
  const int64_t r_hi = imin(p.R, end_in_range(h0, p.dil_h, p.H));
  const int64_t s_lo = first_in_range(w0, p.dil_w);
  const int64_t s_hi = imin(p.S, end_in_range(w0, p.dil_w, p.W));
  float best = -__builtin_inff();
  // PyTorch's start index: the first window position at or after (0, 0).
  // With dilation a window can hold no in-bounds position at all; then, as
  // in PyTorch, y is -inf and the index lies outside the plane (and
  // max_pool2d_backward rejects it).
  int64_t best_i = (h0 + r_lo * p.dil_h) * p.W + w0 + s_lo * p.dil_w;
  for (int64_t r = r_lo; r < r_hi; ++r) {
    const int64_t row = (h0 + r * p.dil_h) * p.W;
    for (int64_t s = s_lo; s < s_hi; ++s) {
      const int64_t i = row + w0 + s * p.dil_w;
      const float v = x[i];
      if (v > best || v != v) {
        best = v;
        best_i = i;
      }
    }
  }
  *y = best;
  if (idx) *idx = best_i;
}

// Interior windows [q0, q1) of one output row: an R x S window at `start`
// + q*stride, fully inside the plane. RC, SC > 0 fix the window size at
// compile time (unrolled: 2x2 and 3x3, undilated, are most networks' pools);
// 0 means p.R, p.S at run time.
template <int RC, int SC>
static inline void max_row_interior(float* yrow, int64_t* irow, const float* x,
                                    const Pool2dParams& p, int64_t start, int64_t q0, int64_t q1) {
  const int64_t R = RC > 0 ? RC : p.R, S = SC > 0 ? SC : p.S;
  const int64_t dh = RC > 0 ? 1 : p.dil_h, dw = SC > 0 ? 1 : p.dil_w;
  const int64_t W = p.W, sw = p.stride_w;
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t first = start + q * sw;
    float best = -__builtin_inff();
    int64_t best_i = first;
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = first + r * dh * W + s * dw;
        const float v = x[i];
        const bool take = v > best || v != v;
        best = take ? v : best;
        best_i = take ? i : best_i;
      }
    }
    yrow[q] = best;
    if (irow) irow[q] = best_i;
  }
}

void max_pool2d_forward(float* y, int64_t* idx, const float* x, const Pool2dParams& p) {
  const int64_t W = p.W, R = p.R, S = p.S, P = p.P, Q = p.Q;
  const int64_t dh = p.dil_h, dw = p.dil_w;
  // Windows entirely inside the plane: rows [p_in, p_end) and columns
  // [q_in, q_end). They need no bounds arithmetic (the general path does
  // two divisions per window) and take the branch-free path below; the
  // same comparisons in the same order, so the same results.
  const int64_t p_in = first_in_range(-p.pad_h, p.stride_h);
  const int64_t p_end = imax(p_in, imin(P, end_in_range(-p.pad_h + (R - 1) * dh, p.stride_h, p.H)));
  const int64_t q_in = imin(Q, first_in_range(-p.pad_w, p.stride_w));
  const int64_t q_end = imax(q_in, imin(Q, end_in_range(-p.pad_w + (S - 1) * dw, p.stride_w, W)));
  for (int64_t pp = 0; pp < P; ++pp) {
    const int64_t h0 = pp * p.stride_h - p.pad_h;
    float* yrow = y + pp * Q;
    int64_t* irow = idx ? idx + pp * Q : nullptr;
    if (pp < p_in || pp >= p_end) {
      for (int64_t q = 0; q < Q; ++q)
        max_window_clipped(yrow + q, irow ? irow + q : nullptr, x, p, h0, q * p.stride_w - p.pad_w);
      continue;
    }
    for (int64_t q = 0; q < q_in; ++q)
      max_window_clipped(yrow + q, irow ? irow + q : nullptr, x, p, h0, q * p.stride_w - p.pad_w);
    const int64_t start = h0 * W - p.pad_w;  // first position of window q: start + q*stride_w
    const bool plain = dh == 1 && dw == 1;
    if (plain && R == 2 && S == 2) {
#ifdef FASTCONV_NATIVE_MAX_ROW_2X2S2  // the ISA's vector version of the same loop
      if (p.stride_w == 2 && W < (int64_t{1} << 30)) {
        max_row_2x2s2(yrow, irow, x, W, start, q_in, q_end);
      } else {
        max_row_interior<2, 2>(yrow, irow, x, p, start, q_in, q_end);
      }
#else
      max_row_interior<2, 2>(yrow, irow, x, p, start, q_in, q_end);
#endif
    } else if (plain && R == 3 && S == 3) {
      max_row_interior<3, 3>(yrow, irow, x, p, start, q_in, q_end);
    } else {
      max_row_interior<0, 0>(yrow, irow, x, p, start, q_in, q_end);
    }
    for (int64_t q = q_end; q < Q; ++q)
      max_window_clipped(yrow + q, irow ? irow + q : nullptr, x, p, h0, q * p.stride_w - p.pad_w);
  }
}

// dx (H,W) = 0; dx[idx[i]] += dy[i] for i in row-major order. Each index is
// read exactly once and checked before use: the indices may be the caller's
// array, which another thread could change between a check and a use.
// Returns -1, or the first i whose index is outside [0, H*W).
int64_t max_pool2d_backward(float* dx, const float* dy, const int64_t* idx, const Pool2dParams& p) {
  const int64_t HW = p.H * p.W;
  int64_t bad = -1;
  for (int64_t i = 0; i < HW; ++i) dx[i] = 0.0f;
  for (int64_t i = 0; i < p.P * p.Q; ++i) {
    const int64_t j = idx[i];
    if (j < 0 || j >= HW) {
      if (bad < 0) bad = i;
      continue;
    }
    dx[j] += dy[i];
  }
  return bad;
}

// Window (p, q) of average pooling: its clipped row and column ranges and its
// divisor (PyTorch's avg_pool2d rule).
struct AvgWindow {
  int64_t h_lo, h_hi, w_lo, w_hi;
  float divisor;
};
static inline AvgWindow avg_window(const Pool2dParams& p, int64_t pp, int64_t q) {
  int64_t h0 = pp * p.stride_h - p.pad_h, w0 = q * p.stride_w - p.pad_w;
  int64_t h1 = imin(h0 + p.R, p.H + p.pad_h), w1 = imin(w0 + p.S, p.W + p.pad_w);
  const int64_t padded_size = (h1 - h0) * (w1 - w0);
  h0 = imax(h0, 0);
  w0 = imax(w0, 0);
  h1 = imin(h1, p.H);
  w1 = imin(w1, p.W);
  int64_t d;
  if (p.divisor_override != 0) {
    d = p.divisor_override;
  } else if (p.count_include_pad) {
    d = padded_size;
  } else {
    d = (h1 - h0) * (w1 - w0);
  }
  return AvgWindow{h0, h1, w0, w1, static_cast<float>(d)};
}

// y[p,q] = (sum of the window's in-bounds elements, row-major, from +0) / divisor.
void avg_pool2d_forward(float* y, const float* x, const Pool2dParams& p) {
  for (int64_t pp = 0; pp < p.P; ++pp) {
    for (int64_t q = 0; q < p.Q; ++q) {
      const AvgWindow win = avg_window(p, pp, q);
      if (win.h_lo >= win.h_hi || win.w_lo >= win.w_hi) {
        y[pp * p.Q + q] = 0.0f;
        continue;
      }
      float sum = 0.0f;
      for (int64_t h = win.h_lo; h < win.h_hi; ++h)
        for (int64_t w = win.w_lo; w < win.w_hi; ++w) sum += x[h * p.W + w];
      y[pp * p.Q + q] = sum / win.divisor;
    }
  }
}

// dx = 0; for windows in row-major order, dx[window] += dy[p,q] / divisor.
void avg_pool2d_backward(float* dx, const float* dy, const Pool2dParams& p) {
  for (int64_t i = 0; i < p.H * p.W; ++i) dx[i] = 0.0f;
  for (int64_t pp = 0; pp < p.P; ++pp) {
    for (int64_t q = 0; q < p.Q; ++q) {
      const AvgWindow win = avg_window(p, pp, q);
      const float g = dy[pp * p.Q + q] / win.divisor;
      for (int64_t h = win.h_lo; h < win.h_hi; ++h)
        for (int64_t w = win.w_lo; w < win.w_hi; ++w) dx[h * p.W + w] += g;
    }
  }
}

}  // namespace FASTCONV_ISA_NS
}  // namespace fastconv
