// The im2col algorithm: one image at a time, a column buffer of
// (C/G*R*S, P*Q) floats per thread (never one for the whole batch), and the
// one sgemm of the library; gemm_for_each decides whether the threads take
// images or share each image's GEMM.
//
//   forward:         y_g (K/G, PQ)    = w_g (K/G, C/G*R*S) * col + b
//   backward_input:  dcol             = w_g^T * dy_g (K/G, PQ); dx = col2im(dcol)
//   backward_weight: dw_g (K/G, CRS) += dy_g * col^T, per chunk of images
//
// Padding: the column buffer holds zeros for padded positions and the GEMM
// multiplies them, which is the library's rule for non-finite values.
#include <cstring>
#include <vector>

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

// Calls body(t) for every tap (c, r, s) of a group, in (c, r, s) order: its
// row of the column buffer, and the output positions whose reads stay inside
// the image, p in t.pr and q in t.qr, reading input row p*stride_h + t.h_off
// of channel c and column q*stride_w + t.w_off.
struct Tap {
  int64_t row, c, h_off, w_off;
  Range pr, qr;
};
template <class Body>
void for_each_tap(const Conv2dParams& p, Body&& body) {
  Tap t;
  for (t.c = 0; t.c < p.Cg(); ++t.c) {
    for (int64_t r = 0; r < p.R; ++r) {
      t.h_off = r * p.dil_h - p.pad_top;
      t.pr = valid_range(t.h_off, p.stride_h, p.H, p.P);
      for (int64_t s = 0; s < p.S; ++s) {
        t.w_off = s * p.dil_w - p.pad_left;
        t.qr = valid_range(t.w_off, p.stride_w, p.W, p.Q);
        t.row = (t.c * p.R + r) * p.S + s;
        body(t);
      }
    }
  }
}

}  // namespace

void im2col(float* col, const float* x, const Conv2dParams& p, int64_t g) {
  const int64_t H = p.H, W = p.W, P = p.P, Q = p.Q, sh = p.stride_h, sw = p.stride_w;
  const float* xg = x + g * p.Cg() * H * W;
  for_each_tap(p, [&](const Tap& t) {
    float* row = col + t.row * P * Q;
    for (int64_t pp = 0; pp < P; ++pp) {
      float* out = row + pp * Q;
      if (pp < t.pr.lo || pp >= t.pr.hi) {
        std::memset(out, 0, sizeof(float) * Q);
        continue;
      }
      const float* xrow = xg + (t.c * H + pp * sh + t.h_off) * W;
      for (int64_t q = 0; q < t.qr.lo; ++q) out[q] = 0.0f;
      if (sw == 1) {
        std::memcpy(out + t.qr.lo, xrow + t.qr.lo + t.w_off, sizeof(float) * (t.qr.hi - t.qr.lo));
      } else {
        for (int64_t q = t.qr.lo; q < t.qr.hi; ++q) out[q] = xrow[q * sw + t.w_off];
      }
      for (int64_t q = t.qr.hi; q < Q; ++q) out[q] = 0.0f;
    }
  });
}

void col2im(float* dx, const float* col, const Conv2dParams& p, int64_t g) {
  const int64_t H = p.H, W = p.W, P = p.P, Q = p.Q, sh = p.stride_h, sw = p.stride_w;
  float* dxg = dx + g * p.Cg() * H * W;
  std::memset(dxg, 0, sizeof(float) * p.Cg() * H * W);
  for_each_tap(p, [&](const Tap& t) {
    const float* row = col + t.row * P * Q;
    for (int64_t pp = t.pr.lo; pp < t.pr.hi; ++pp) {
      float* dxrow = dxg + (t.c * H + pp * sh + t.h_off) * W;
      const float* in = row + pp * Q;
      for (int64_t q = t.qr.lo; q < t.qr.hi; ++q) dxrow[q * sw + t.w_off] += in[q];
    }
  });
}

namespace {

// The weights of every group packed once per call as GEMM A operands:
// w_g (K/G x C/G*R*S) for the forward pass, or its transpose for backward-input.
class PackedWeights {
 public:
  Status pack(const float* w, const Conv2dParams& p, bool transpose) {
    const int64_t Kg = p.Kg(), CRS = p.Cg() * p.R * p.S;
    const int mr = gemm_blocking().mr;
    const int64_t outer = transpose ? CRS : Kg, depth = transpose ? Kg : CRS;
    const int64_t per_group = PackedOperand::size(outer, depth, mr);
    float* buf = thread_workspace(kSlotWeights, per_group * p.G);
    if (buf == nullptr) return Status::OutOfMemory("conv2d: cannot allocate the packed weights");
    groups_.reserve(static_cast<size_t>(p.G));
    for (int64_t g = 0; g < p.G; ++g) {
      // w_g[k][crs] = w[(g*Kg + k)*CRS + crs]: outer-major, or depth-major transposed.
      const DenseOperand src(w + g * Kg * CRS, CRS, !transpose);
      groups_.emplace_back(src, outer, depth, mr, buf + g * per_group);
    }
    return Status::Ok();
  }
  const GemmOperand& group(int64_t g) const { return groups_[static_cast<size_t>(g)]; }

 private:
  std::vector<PackedOperand> groups_;
};

// The calling thread's column buffer (C/G*R*S, P*Q), or null.
float* column_buffer(const Conv2dParams& p) {
  return thread_workspace(kSlotColumns, p.Cg() * p.R * p.S * p.P * p.Q);
}
constexpr const char* kNoColumns = "conv2d: cannot allocate the im2col buffer";

// Runs body(n, col, threaded) for every image n with the thread's column
// buffer; body passes `threaded` on to gemm_on (see gemm_for_each).
template <class Body>
Status for_each_image(const Conv2dParams& p, Body&& body) {
  return gemm_for_each(p.N, [&](int64_t n, bool threaded) {
    float* col = column_buffer(p);
    if (col == nullptr) return Status::OutOfMemory(kNoColumns);
    return body(n, col, threaded);
  });
}

}  // namespace

Status conv2d_forward_im2col(float* y, const float* x, const float* w, const float* b,
                             const Conv2dParams& p, bool relu) {
  const int64_t Kg = p.Kg(), CRS = p.Cg() * p.R * p.S, PQ = p.P * p.Q;
  PackedWeights wp;
  FASTCONV_RETURN_IF_ERROR(wp.pack(w, p, /*transpose=*/false));
  return for_each_image(p, [&](int64_t n, float* col, bool threaded) {
    for (int64_t g = 0; g < p.G; ++g) {
      im2col(col, x + n * p.C * p.H * p.W, p, g);
      // y_g (K/G, PQ) = w_g * col + b_g; col[crs][pq] is depth-major along crs.
      GemmEpilogue ep;
      ep.row_bias = b ? b + g * Kg : nullptr;
      ep.relu = relu;
      FASTCONV_RETURN_IF_ERROR(gemm_on(threaded, Kg, PQ, CRS, 1.0f, wp.group(g),
                                       DenseOperand(col, PQ, false), 0.0f,
                                       y + (n * p.K + g * Kg) * PQ, PQ, ep));
    }
    return Status::Ok();
  });
}

Status conv2d_backward_input_im2col(float* dx, const float* dy, const float* w,
                                    const Conv2dParams& p) {
  const int64_t Kg = p.Kg(), CRS = p.Cg() * p.R * p.S, PQ = p.P * p.Q;
  PackedWeights wt;
  FASTCONV_RETURN_IF_ERROR(wt.pack(w, p, /*transpose=*/true));
  return for_each_image(p, [&](int64_t n, float* dcol, bool threaded) {
    for (int64_t g = 0; g < p.G; ++g) {
      // dcol (CRS, PQ) = w_g^T * dy_g; dy_g[k][pq] is depth-major along k.
      FASTCONV_RETURN_IF_ERROR(gemm_on(threaded, CRS, PQ, Kg, 1.0f, wt.group(g),
                                       DenseOperand(dy + (n * p.K + g * Kg) * PQ, PQ, false), 0.0f,
                                       dcol, PQ));
      col2im(dx + n * p.C * p.H * p.W, dcol, p, g);
    }
    return Status::Ok();
  });
}

Status conv2d_backward_weight_im2col(float* dw_partials, const float* dy, const float* x,
                                     const Conv2dParams& p, const ChunkWave& wave) {
  const int64_t Kg = p.Kg(), CRS = p.Cg() * p.R * p.S, PQ = p.P * p.Q;
  const int64_t chunks = weight_grad_chunks(p.N);
  return parallel_for(wave.count, [&](int64_t i) {
    const int64_t chunk = wave.first + i;
    float* dw = dw_partials + i * p.K * CRS;
    float* col = column_buffer(p);
    if (col == nullptr) return Status::OutOfMemory(kNoColumns);
    for (int64_t i = 0; i < p.K * CRS; ++i) dw[i] = 0.0f;
    for (int64_t n = chunk_begin(chunk, chunks, p.N); n < chunk_begin(chunk + 1, chunks, p.N);
         ++n) {
      for (int64_t g = 0; g < p.G; ++g) {
        im2col(col, x + n * p.C * p.H * p.W, p, g);
        // dw_g (K/G, CRS) += dy_g (K/G, PQ) * col^T: both operands are
        // outer-major along pq.
        FASTCONV_RETURN_IF_ERROR(
            gemm_serial(Kg, CRS, PQ, 1.0f, DenseOperand(dy + (n * p.K + g * Kg) * PQ, PQ, true),
                        DenseOperand(col, PQ, true), 1.0f, dw + g * Kg * CRS, CRS));
      }
    }
    return Status::Ok();
  });
}

}  // namespace fastconv
