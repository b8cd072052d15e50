// Direct convolution kernels (generic bodies), one output plane per call.
// x is (N,C,H,W), w is (K,C/G,R,S), y is (N,K,P,Q); an output position (p, q)
// reads input (p*stride_h - pad_top + r*dil_h, q*stride_w - pad_left + s*dil_w).
//
// For each (c, r, s) the valid output range [p_lo, p_hi) x [q_lo, q_hi) is
// computed once, so the inner loop runs over whole output rows without a
// bounds test and vectorises over q (stride 1) or gathers (stride > 1).
//
// Padding rule (shared with im2col and the reference): padded positions hold
// zeros and their products are added, so a non-finite weight (or gradient)
// makes every output whose window touches padding NaN (0 * inf = NaN). For
// finite values skipping those products changes nothing, so only the rare
// non-finite case pays for them.
// Covered by tests/test_conv2d.py (every case x algo x ISA).

namespace fastconv {
namespace FASTCONV_ISA_NS {

// Adds v to every element of the (P,Q) plane y outside [p_lo,p_hi) x [q_lo,q_hi).
static void add_outside(float* y, int64_t P, int64_t Q, int64_t p_lo, int64_t p_hi, int64_t q_lo,
                        int64_t q_hi, float v) {
  for (int64_t p = 0; p < P; ++p)
    for (int64_t q = 0; q < Q; ++q)
      if (p < p_lo || p >= p_hi || q < q_lo || q >= q_hi) y[p * Q + q] += v;
}

// True if the (P,Q) plane y holds a non-finite value outside the given range.
static bool nonfinite_outside(const float* y, int64_t P, int64_t Q, int64_t p_lo, int64_t p_hi,
                              int64_t q_lo, int64_t q_hi) {
  for (int64_t p = 0; p < P; ++p)
    for (int64_t q = 0; q < Q; ++q)
      if ((p < p_lo || p >= p_hi || q < q_lo || q >= q_hi) && !is_finite(y[p * Q + q])) return true;
  return false;
}

// y (P,Q) = b[k] + sum over (c, r, s) of w[k,c,r,s] * x[g*C/G + c, ...], in
// (c, r, s) order; x is one image (C,H,W), w the whole weight.
void conv2d_forward_direct(float* y, const float* x, const float* w, const float* b,
                           const Conv2dParams& p, int64_t k) {
  const int64_t H = p.H, W = p.W, R = p.R, S = p.S, P = p.P, Q = p.Q, Cg = p.Cg();
  const int64_t sh = p.stride_h, sw = p.stride_w;
  const float* xg = x + (k / p.Kg()) * Cg * H * W;
  const float* wk = w + k * Cg * R * S;
  const float bias = b ? b[k] : 0.0f;
  for (int64_t i = 0; i < P * Q; ++i) y[i] = bias;
  for (int64_t c = 0; c < Cg; ++c) {
    for (int64_t r = 0; r < R; ++r) {
      const int64_t h_off = r * p.dil_h - p.pad_top;  // h = p*sh + h_off
      const int64_t p_lo = first_in_range(h_off, sh);
      const int64_t p_hi = imax(p_lo, imin(P, end_in_range(h_off, sh, H)));
      for (int64_t s = 0; s < S; ++s) {
        const float wv = wk[(c * R + r) * S + s];
        const int64_t w_off = s * p.dil_w - p.pad_left;  // w = q*sw + w_off
        const int64_t q_lo = first_in_range(w_off, sw);
        const int64_t q_hi = imax(q_lo, imin(Q, end_in_range(w_off, sw, W)));
        for (int64_t pp = p_lo; pp < p_hi; ++pp) {
          // Row pointers start at column 0: q*sw + w_off >= 0 for q in range.
          const float* __restrict xrow = xg + (c * H + pp * sh + h_off) * W;
          float* __restrict yrow = y + pp * Q;
          if (sw == 1) {
            for (int64_t q = q_lo; q < q_hi; ++q) yrow[q] += wv * xrow[q + w_off];
          } else {
            for (int64_t q = q_lo; q < q_hi; ++q) yrow[q] += wv * xrow[q * sw + w_off];
          }
        }
        if (!is_finite(wv)) add_outside(y, P, Q, p_lo, p_hi, q_lo, q_hi, 0.0f * wv);
      }
    }
  }
}

// dx (H,W) of input channel c of one image = sum over k in c's group and
// (r, s) of w[k, c%Cg, r, s] * dy[k] scattered to the positions it read.
void conv2d_backward_input_direct(float* dx, const float* dy, const float* w, const Conv2dParams& p,
                                  int64_t c) {
  const int64_t H = p.H, W = p.W, R = p.R, S = p.S, P = p.P, Q = p.Q, Cg = p.Cg(), Kg = p.Kg();
  const int64_t sh = p.stride_h, sw = p.stride_w;
  const int64_t g = c / Cg, cg = c % Cg;
  for (int64_t i = 0; i < H * W; ++i) dx[i] = 0.0f;
  for (int64_t k = g * Kg; k < (g + 1) * Kg; ++k) {
    const float* dyk = dy + k * P * Q;
    for (int64_t r = 0; r < R; ++r) {
      const int64_t h_off = r * p.dil_h - p.pad_top;
      const int64_t p_lo = first_in_range(h_off, sh);
      const int64_t p_hi = imax(p_lo, imin(P, end_in_range(h_off, sh, H)));
      for (int64_t s = 0; s < S; ++s) {
        const float wv = w[((k * Cg + cg) * R + r) * S + s];
        const int64_t w_off = s * p.dil_w - p.pad_left;
        const int64_t q_lo = first_in_range(w_off, sw);
        const int64_t q_hi = imax(q_lo, imin(Q, end_in_range(w_off, sw, W)));
        for (int64_t pp = p_lo; pp < p_hi; ++pp) {
          float* __restrict dxrow = dx + (pp * sh + h_off) * W;
          const float* __restrict dyrow = dyk + pp * Q;
          if (sw == 1) {
            for (int64_t q = q_lo; q < q_hi; ++q) dxrow[q + w_off] += wv * dyrow[q];
          } else {
            for (int64_t q = q_lo; q < q_hi; ++q) dxrow[q * sw + w_off] += wv * dyrow[q];
          }
        }
      }
    }
  }
}

// dw (C/G,R,S) of filter k += sum over (p, q) of dy[k,p,q] * x[g*C/G + c, ...]
// for one image.
void conv2d_backward_weight_direct(float* dw, const float* dy, const float* x,
                                   const Conv2dParams& p, int64_t k) {
  const int64_t H = p.H, W = p.W, R = p.R, S = p.S, P = p.P, Q = p.Q, Cg = p.Cg();
  const int64_t sh = p.stride_h, sw = p.stride_w;
  const float* xg = x + (k / p.Kg()) * Cg * H * W;
  const float* dyk = dy + k * P * Q;
  // Only a non-finite dy can make the padding's zero products matter.
  const bool dy_finite = is_finite(sum_lanes16(dyk, P * Q) * 0.0f);
  for (int64_t c = 0; c < Cg; ++c) {
    for (int64_t r = 0; r < R; ++r) {
      const int64_t h_off = r * p.dil_h - p.pad_top;
      const int64_t p_lo = first_in_range(h_off, sh);
      const int64_t p_hi = imax(p_lo, imin(P, end_in_range(h_off, sh, H)));
      for (int64_t s = 0; s < S; ++s) {
        const int64_t w_off = s * p.dil_w - p.pad_left;
        const int64_t q_lo = first_in_range(w_off, sw);
        const int64_t q_hi = imax(q_lo, imin(Q, end_in_range(w_off, sw, W)));
        const int64_t n = q_hi - q_lo;
        // 16 partial sums over the valid (p, q) region, combined in a fixed tree.
        float lanes[16] = {0};
        for (int64_t pp = p_lo; pp < p_hi; ++pp) {
          const float* __restrict a = dyk + pp * Q + q_lo;
          const float* __restrict xrow = xg + (c * H + pp * sh + h_off) * W + w_off + q_lo * sw;
          int64_t q = 0;
          if (sw == 1) {
            for (; q + 16 <= n; q += 16)
              for (int j = 0; j < 16; ++j) lanes[j] += a[q + j] * xrow[q + j];
          } else {
            for (; q + 16 <= n; q += 16)
              for (int j = 0; j < 16; ++j) lanes[j] += a[q + j] * xrow[(q + j) * sw];
          }
          for (int j = 0; q + j < n; ++j) lanes[j] += a[q + j] * xrow[(q + j) * sw];
        }
        for (int v = 8; v >= 1; v /= 2)
          for (int j = 0; j < v; ++j) lanes[j] += lanes[j + v];
        float acc = lanes[0];
        if (!dy_finite && nonfinite_outside(dyk, P, Q, p_lo, p_hi, q_lo, q_hi))
          acc += __builtin_nanf("");  // 0 * non-finite
        dw[(c * R + r) * S + s] += acc;
      }
    }
  }
}

// The sum of one (n, k) plane of dy: the bias gradient's share of it.
float conv2d_backward_bias(const float* x, int64_t n) { return sum_lanes16(x, n); }

#ifndef FASTCONV_NATIVE_SHIFT_IMAGE  // the ISA's own file has it
void conv2d_shift_image(float* xs, const float* x, const Conv2dParams& p, int64_t Hp,
                        int64_t phases) {
  const int64_t Q = p.Q, sw = p.stride_w;
  float* dst = xs;
  for (int64_t s = 0; s < p.S; ++s) {
    const int64_t w0 = s * p.dil_w - p.pad_left;  // input column of q = 0
    const int64_t q_lo = imin(first_in_range(w0, sw), Q);
    const int64_t q_hi = imin(imax(end_in_range(w0, sw, p.W), q_lo), Q);
    for (int64_t r0 = 0; r0 < phases; ++r0) {
      for (int64_t c = 0; c < p.C; ++c) {
        for (int64_t hp = 0; hp < Hp; ++hp, dst += Q) {
          const int64_t h = hp * p.stride_h + r0 - p.pad_top;
          const bool inside = h >= 0 && h < p.H;
          const float* src = x + (c * p.H + (inside ? h : 0)) * p.W + w0;
          for (int64_t q = 0; q < Q; ++q)
            dst[q] = inside && q >= q_lo && q < q_hi ? src[q * sw] : 0.0f;
        }
      }
    }
  }
}
#endif

// The (kb, t) blocks conv2d_dot_block takes on every ISA: what AVX-512's
// registers hold (see kernels/avx512/conv2d-dot-inl.h).
static inline bool dot_block_supported(int kb, int t) {
  return t >= 1 && t <= 9 && kb >= 1 && kb <= 4 && !(kb == 4 && t > 6);
}

#ifndef FASTCONV_NATIVE_DOT_BLOCK  // the ISA's own file has it
// The dot products of conv2d_dot_block one at a time: 16 partial sums per
// product, combined in a fixed tree after the last image.
bool conv2d_dot_block(float* out, int64_t ldo, const float* const* a, const float* const* b,
                      int64_t len, int64_t count, int64_t ld_a, int64_t ld_b, int kb, int t) {
  if (!dot_block_supported(kb, t)) return false;
  if (out == nullptr) return true;
  for (int i = 0; i < kb; ++i) {
    for (int j = 0; j < t; ++j) {
      float lanes[16] = {0};
      for (int64_t c = 0; c < count; ++c) {
        const float* __restrict ai = a[i] + c * ld_a;
        const float* __restrict bj = b[j] + c * ld_b;
        int64_t m = 0;
        for (; m + 16 <= len; m += 16)
          for (int l = 0; l < 16; ++l) lanes[l] += ai[m + l] * bj[m + l];
        for (int l = 0; m + l < len; ++l) lanes[l] += ai[m + l] * bj[m + l];
      }
      for (int v = 8; v >= 1; v /= 2)
        for (int l = 0; l < v; ++l) lanes[l] += lanes[l + v];
      out[i * ldo + j] += lanes[0];
    }
  }
  return true;
}
#endif

#ifndef FASTCONV_NATIVE_FORWARD_ROWS  // the ISA's own file has it
// No generic tile: one output at a time was 2-7x slower than these ISAs'
// per-plane direct kernel, so the direct driver uses that one instead.
bool conv2d_forward_rows(float*, int64_t, const float*, int64_t, const float* const*, int64_t,
                         int64_t, int, int, const float*, bool) {
  return false;
}
#endif

}  // namespace FASTCONV_ISA_NS
}  // namespace fastconv
