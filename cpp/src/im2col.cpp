// The im2col algorithm: one image at a time, a column buffer of
// (C/G*R*S, P*Q) floats per thread (never one for the whole batch), and the
// one sgemm of the library.
//
//   forward:         y_g (K/G, PQ)    = w_g (K/G, C/G*R*S) * col + b
//   backward_input:  dcol             = w_g^T * dy_g (K/G, PQ); dx = col2im(dcol)
//   backward_weight: dw_g (K/G, CRS) += dy_g * col^T, per chunk of images
//
// Padding: the column buffer holds zeros for padded positions and the GEMM
// multiplies them, which is the library's rule for non-finite values.
#include <cstring>

#include "conv2d_internal.h"
#include "fastconv/gemm.h"
#include "fastconv/threading.h"

namespace fastconv {
namespace {

inline int64_t first_in_range(int64_t off, int64_t stride) {
  return off >= 0 ? 0 : (-off + stride - 1) / stride;
}
inline int64_t end_in_range(int64_t off, int64_t stride, int64_t n) {
  return n - off <= 0 ? 0 : (n - off - 1) / stride + 1;
}

// Valid output range [lo, hi) for kernel offset `off` along one dimension.
struct Range {
  int64_t lo, hi;
};
// Both ends are clamped to [0, out]: a tap that only ever reads padding
// (padding larger than the output) has an empty range, never one past `out`.
inline Range valid_range(int64_t off, int64_t stride, int64_t n, int64_t out) {
  int64_t lo = first_in_range(off, stride);
  int64_t hi = end_in_range(off, stride, n);
  if (lo > out) lo = out;
  if (hi > out) hi = out;
  if (hi < lo) hi = lo;
  return {lo, hi};
}

}  // namespace

void im2col(float* col, const float* x, const Conv2dParams& p, int64_t g) {
  const int64_t H = p.H, W = p.W, R = p.R, S = p.S, P = p.P, Q = p.Q, Cg = p.Cg();
  const int64_t sh = p.stride_h, sw = p.stride_w;
  const float* xg = x + g * Cg * H * W;
  for (int64_t c = 0; c < Cg; ++c) {
    for (int64_t r = 0; r < R; ++r) {
      const int64_t h_off = r * p.dil_h - p.pad_top;
      const Range pr = valid_range(h_off, sh, H, P);
      for (int64_t s = 0; s < S; ++s) {
        const int64_t w_off = s * p.dil_w - p.pad_left;
        const Range qr = valid_range(w_off, sw, W, Q);
        float* row = col + ((c * R + r) * S + s) * P * Q;
        for (int64_t pp = 0; pp < P; ++pp) {
          float* out = row + pp * Q;
          if (pp < pr.lo || pp >= pr.hi) {
            std::memset(out, 0, sizeof(float) * Q);
            continue;
          }
          const float* xrow = xg + (c * H + pp * sh + h_off) * W;
          for (int64_t q = 0; q < qr.lo; ++q) out[q] = 0.0f;
          if (sw == 1) {
            std::memcpy(out + qr.lo, xrow + qr.lo + w_off, sizeof(float) * (qr.hi - qr.lo));
          } else {
            for (int64_t q = qr.lo; q < qr.hi; ++q) out[q] = xrow[q * sw + w_off];
          }
          for (int64_t q = qr.hi; q < Q; ++q) out[q] = 0.0f;
        }
      }
    }
  }
}

void col2im(float* dx, const float* col, const Conv2dParams& p, int64_t g) {
  const int64_t H = p.H, W = p.W, R = p.R, S = p.S, P = p.P, Q = p.Q, Cg = p.Cg();
  const int64_t sh = p.stride_h, sw = p.stride_w;
  float* dxg = dx + g * Cg * H * W;
  std::memset(dxg, 0, sizeof(float) * Cg * H * W);
  for (int64_t c = 0; c < Cg; ++c) {
    for (int64_t r = 0; r < R; ++r) {
      const int64_t h_off = r * p.dil_h - p.pad_top;
      const Range pr = valid_range(h_off, sh, H, P);
      for (int64_t s = 0; s < S; ++s) {
        const int64_t w_off = s * p.dil_w - p.pad_left;
        const Range qr = valid_range(w_off, sw, W, Q);
        const float* row = col + ((c * R + r) * S + s) * P * Q;
        for (int64_t pp = pr.lo; pp < pr.hi; ++pp) {
          float* dxrow = dxg + (c * H + pp * sh + h_off) * W;
          const float* in = row + pp * Q;
          for (int64_t q = qr.lo; q < qr.hi; ++q) dxrow[q * sw + w_off] += in[q];
        }
      }
    }
  }
}

// Each image is one task; a thread keeps its column buffer across images and
// calls. Per-image work is independent, so the split does not change results.
Status conv2d_forward_im2col(float* y, const float* x, const float* w, const float* b,
                             const Conv2dParams& p) {
  const int64_t Kg = p.Kg(), CRS = p.Cg() * p.R * p.S, PQ = p.P * p.Q;
  return parallel_for(p.N, [&](int64_t n) {
    float* col = thread_workspace(kSlotColumns, CRS * PQ);
    if (col == nullptr) return false;
    for (int64_t g = 0; g < p.G; ++g) {
      float* yg = y + (n * p.K + g * Kg) * PQ;
      im2col(col, x + n * p.C * p.H * p.W, p, g);
      if (b != nullptr) {
        for (int64_t k = 0; k < Kg; ++k)
          for (int64_t i = 0; i < PQ; ++i) yg[k * PQ + i] = b[g * Kg + k];
      }
      if (!sgemm_serial(Trans::kNo, Trans::kNo, Kg, PQ, CRS, 1.0f, w + g * Kg * CRS, CRS, col, PQ,
                        b != nullptr ? 1.0f : 0.0f, yg, PQ))
        return false;
    }
    return true;
  });
}

Status conv2d_backward_input_im2col(float* dx, const float* dy, const float* w,
                                    const Conv2dParams& p) {
  const int64_t Kg = p.Kg(), CRS = p.Cg() * p.R * p.S, PQ = p.P * p.Q;
  return parallel_for(p.N, [&](int64_t n) {
    float* dcol = thread_workspace(kSlotColumns, CRS * PQ);
    if (dcol == nullptr) return false;
    for (int64_t g = 0; g < p.G; ++g) {
      if (!sgemm_serial(Trans::kYes, Trans::kNo, CRS, PQ, Kg, 1.0f, w + g * Kg * CRS, CRS,
                        dy + (n * p.K + g * Kg) * PQ, PQ, 0.0f, dcol, PQ))
        return false;
      col2im(dx + n * p.C * p.H * p.W, dcol, p, g);
    }
    return true;
  });
}

Status conv2d_backward_weight_im2col(float* dw_partials, const float* dy, const float* x,
                                     const Conv2dParams& p) {
  const int64_t Kg = p.Kg(), CRS = p.Cg() * p.R * p.S, PQ = p.P * p.Q;
  const int64_t chunks = weight_grad_chunks(p.N);
  return parallel_for(chunks, [&](int64_t chunk) {
    float* dw = dw_partials + chunk * p.K * CRS;
    float* col = thread_workspace(kSlotColumns, CRS * PQ);
    if (col == nullptr) return false;
    for (int64_t i = 0; i < p.K * CRS; ++i) dw[i] = 0.0f;
    for (int64_t n = chunk_begin(chunk, chunks, p.N); n < chunk_begin(chunk + 1, chunks, p.N);
         ++n) {
      for (int64_t g = 0; g < p.G; ++g) {
        im2col(col, x + n * p.C * p.H * p.W, p, g);
        if (!sgemm_serial(Trans::kNo, Trans::kYes, Kg, CRS, PQ, 1.0f,
                          dy + (n * p.K + g * Kg) * PQ, PQ, col, PQ, 1.0f, dw + g * Kg * CRS, CRS))
          return false;
      }
    }
    return true;
  });
}

}  // namespace fastconv
