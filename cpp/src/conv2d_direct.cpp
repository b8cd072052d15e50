// The direct algorithm's backward-weight for stride 1, as dot products:
//
//   dw[k][c][r][s] = sum over images n and pixels m = p*Q + q of
//                    dy[n][k][m] * x[n][g*C/G + c][p - pad_top + r*dil_h][q - pad_left + s*dil_w]
//
// With stride 1 the second factor, for a fixed tap (c, r, s), is one
// contiguous run over m in a copy of the image shifted by s columns and cut
// to Q columns (rows p + r*dil_h, zeros in the padding): S such copies per
// image (S times x, the "blocked copy of an activation" of the design rules)
// make every tap's row of the patch matrix a plain pointer. Each dw element
// is then a dot product of two contiguous runs (dy's plane and a shifted
// row), and conv2d_dot_block computes kb x t of them at once, 16 pixels per
// step across output rows (lanes stay full however short Q is).
//
// Where the GEMM routes pack a patch matrix with few taps into panels of
// 14 x 32 (Keras conv1: 9 taps x 32 filters, LeNet conv1: 25 x 6), this
// reads every operand once per block and needs no packing.
//
// Determinism: a task is one chunk of images (weight_grad_chunks) and adds
// its images in order, in sub-chunks whose size depends only on the shape;
// chunk partials are reduced in chunk order by the caller.
#include <algorithm>
#include <cstring>

#include "conv2d_internal.h"
#include "fastconv/dispatch.h"
#include "fastconv/threading.h"

namespace fastconv {
namespace {

struct DotConfig {
  int kb = 0, t = 0;
};

// (kb, t) blocks covering Kg filters x taps, cheapest by a count of the
// kernel's per-step cost (max of FMAs and loads, plus loop overhead).
DotConfig choose_blocks(int64_t Kg, int64_t taps) {
  static constexpr DotConfig kOptions[] = {{4, 7}, {3, 9}, {2, 9}, {1, 9}};
  DotConfig best;
  int64_t best_cost = -1;
  for (const DotConfig& o : kOptions) {
    int64_t cost = 0;
    for (int64_t k = 0; k < Kg; k += o.kb) {
      const int64_t kb = std::min<int64_t>(o.kb, Kg - k);
      for (int64_t t = 0; t < taps; t += o.t) {
        const int64_t tb = std::min<int64_t>(o.t, taps - t);
        cost += std::max(kb * tb, kb + tb) + 6;
      }
    }
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best = o;
    }
  }
  return best;
}

// xs (S, C, Hp, Q) for one image x (C, H, W): xs[s][c][h'][q] =
// x[c][h' - pad_top][q - pad_left + s*dil_w], zero outside the image.
void shift_image(float* xs, const float* x, const Conv2dParams& p, int64_t Hp) {
  const int64_t Q = p.Q;
  for (int64_t s = 0; s < p.S; ++s) {
    const int64_t w0 = s * p.dil_w - p.pad_left;  // input column of q = 0
    const int64_t q_lo = std::clamp<int64_t>(-w0, 0, Q), q_hi = std::clamp<int64_t>(p.W - w0, q_lo, Q);
    for (int64_t c = 0; c < p.C; ++c) {
      for (int64_t hp = 0; hp < Hp; ++hp) {
        float* dst = xs + ((s * p.C + c) * Hp + hp) * Q;
        const int64_t h = hp - p.pad_top;
        if (h < 0 || h >= p.H) {
          std::fill(dst, dst + Q, 0.0f);
          continue;
        }
        const float* src = x + (c * p.H + h) * p.W + w0;
        std::fill(dst, dst + q_lo, 0.0f);
        std::memcpy(dst + q_lo, src + q_lo, sizeof(float) * (q_hi - q_lo));
        std::fill(dst + q_hi, dst + Q, 0.0f);
      }
    }
  }
}

}  // namespace

bool conv2d_backward_weight_shifted_applies(const Conv2dParams& p) {
  return p.stride_h == 1 && p.stride_w == 1;
}

Status conv2d_backward_weight_shifted(float* dw_partials, const float* dy, const float* x,
                                      const Conv2dParams& p) {
  const KernelTable& kt = kernels();
  const int64_t Kg = p.Kg(), Cg = p.Cg(), RS = p.R * p.S, taps = Cg * RS, PQ = p.P * p.Q;
  const int64_t Hp = p.P + (p.R - 1) * p.dil_h;  // rows of a shifted copy
  const int64_t xs_image = p.S * p.C * Hp * p.Q;
  const int64_t chunks = weight_grad_chunks(p.N);
  const DotConfig cfg = choose_blocks(Kg, taps);
  // Images per sub-chunk: their shifted copies stay within 256 KB (L2).
  const int64_t sub_max = std::max<int64_t>(1, 65536 / std::max<int64_t>(xs_image, 1));
  return parallel_for(chunks, [&](int64_t chunk) {
    const int64_t n_begin = chunk_begin(chunk, chunks, p.N), n_end = chunk_begin(chunk + 1, chunks, p.N);
    float* dwc = dw_partials + chunk * p.K * taps;
    std::fill(dwc, dwc + p.K * taps, 0.0f);
    if (PQ == 0) return true;
    float* xs = thread_workspace(kSlotColumns, std::min(sub_max, n_end - n_begin) * xs_image);
    if (xs == nullptr) return false;
    const float* a[4];
    const float* b[9];
    for (int64_t n0 = n_begin; n0 < n_end; n0 += sub_max) {
      const int64_t count = std::min(sub_max, n_end - n0);
      for (int64_t i = 0; i < count; ++i)
        shift_image(xs + i * xs_image, x + (n0 + i) * p.C * p.H * p.W, p, Hp);
      for (int64_t g = 0; g < p.G; ++g) {
        for (int64_t k0 = 0; k0 < Kg; k0 += cfg.kb) {
          const int kb = static_cast<int>(std::min<int64_t>(cfg.kb, Kg - k0));
          for (int i = 0; i < kb; ++i) a[i] = dy + (n0 * p.K + g * Kg + k0 + i) * PQ;
          for (int64_t t0 = 0; t0 < taps; t0 += cfg.t) {
            const int t = static_cast<int>(std::min<int64_t>(cfg.t, taps - t0));
            for (int j = 0; j < t; ++j) {  // tap (c, r, s) of the group: a row of copy s
              const int64_t tap = t0 + j, c = g * Cg + tap / RS, r = tap % RS / p.S, s = tap % p.S;
              b[j] = xs + ((s * p.C + c) * Hp + r * p.dil_h) * p.Q;
            }
            kt.conv2d_dot_block(dwc + (g * Kg + k0) * taps + t0, taps, a, b, PQ, count, p.K * PQ,
                                xs_image, kb, t);
          }
        }
      }
    }
    return true;
  });
}

}  // namespace fastconv
