// The direct algorithm over shifted copies of each image. Backward-weight
// as dot products:
//
//   dw[k][c][r][s] = sum over images n and pixels m = p*Q + q of
//                    dy[n][k][m] * x[n][g*C/G + c][p*sh - pad_top + r*dil_h][q*sw - pad_left +
//                    s*dil_w]
//
// For a fixed tap (c, r, s) the second factor is one contiguous run over m
// in a copy of the image shifted by s columns and cut to Q columns (every
// stride_w-th column; for stride_h > 1, one copy per row phase r*dil_h mod
// stride_h, holding every stride_h-th row; zeros in the padding; see Copies).
// S such copies per image (S times x for stride 1, the "blocked copy of an
// activation" of the design rules) make every tap's row of the patch matrix a
// plain pointer. Each dw element is then a dot product of two contiguous runs
// (dy's plane and a shifted row), and conv2d_dot_block computes kb x t of
// them at once, 16 pixels per step across output rows (lanes stay full
// however short Q is).
//
// Where the GEMM routes pack a patch matrix with few taps into panels of
// 14 x 32 (Keras conv1: 9 taps x 32 filters, LeNet conv1: 25 x 6), this
// reads every operand once per block and needs no packing.
//
// The forward pass reads the same copies the other way round: y's plane of
// filter k is sum over taps of w[k][tap] * (the tap's row), so a tile of kb
// filters x up to 112 pixels (conv2d_forward_rows) broadcasts kb weights and
// loads a few vectors of one row per tap, and is stored straight into y's
// NCHW plane (no transpose, no packing; the GEMM routes' 14 x 32 tile leaves
// most of its rows or columns empty for 6 -> 16 filters). Backward-input with
// stride 1 is that forward pass on dy with the flipped, transposed weights and
// padding dil*(R-1) - pad.
//
// Determinism: a backward-weight task is one chunk of images (weight_grad_chunks) and adds
// its images in order, in sub-chunks whose size depends only on the shape;
// chunk partials are reduced in chunk order by the caller.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "conv2d_internal.h"
#include "fastconv/threading.h"
#include "kernels/kernel_table.h"

namespace fastconv {
namespace {

// A kernel tile: up to `a` filters x `b` taps (dot products) or vectors of
// 16 pixels (forward).
struct Tile {
  int a = 0, b = 0;
};

// The option whose tiles cover na x nb cheapest, by the kernel's per-step
// cost of one tile (its FMAs or its loads, whichever is more, plus loop
// overhead), edge tiles included.
template <size_t N>
Tile cheapest_tiles(const Tile (&options)[N], int64_t na, int64_t nb, int64_t extra_loads,
                    int64_t overhead) {
  Tile best;
  int64_t best_cost = -1;
  for (const Tile& o : options) {
    int64_t cost = 0;
    for (int64_t i = 0; i < na; i += o.a) {
      const int64_t a = std::min<int64_t>(o.a, na - i);
      for (int64_t j = 0; j < nb; j += o.b) {
        const int64_t b = std::min<int64_t>(o.b, nb - j);
        cost += std::max(a * b, a + b + extra_loads) + overhead;
      }
    }
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best = o;
    }
  }
  return best;
}

// (kb, t) blocks of Kg filters x taps for conv2d_dot_block.
Tile choose_blocks(int64_t Kg, int64_t taps) {
  static constexpr Tile kOptions[] = {{4, 6}, {3, 9}, {2, 9}, {1, 9}};
  return cheapest_tiles(kOptions, Kg, taps, 0, 6);
}

// Where the copies of one image put each tap's row. A tap (c, r, s) reads
// input row (p + j)*stride_h + r0 - pad_top for output row p, with r*dil_h =
// j*stride_h + r0: copy (s, r0) holds the input rows r0, r0 + stride_h, ...
// (cut to the columns q*stride_w + s*dil_w - pad_left), so the tap's values
// for pixels m = p*Q + q are the run starting at row j of that copy.
struct Copies {
  int64_t phases = 1;  // row phases r0 in use: min(stride_h, (R-1)*dil_h + 1)
  int64_t Hp = 0;      // rows per copy: P + (R-1)*dil_h / stride_h
  int64_t plane = 0;   // floats per channel of a copy: Hp * Q
  int64_t image = 0;   // floats per image: S * phases copies of C planes
  explicit Copies(const Conv2dParams& p)
      : phases(std::min(p.stride_h, (p.R - 1) * p.dil_h + 1)),
        Hp(p.P + (p.R - 1) * p.dil_h / p.stride_h),
        plane(Hp * p.Q),
        image(p.S * phases * p.C * plane) {}
  const float* row(const float* xs, const Conv2dParams& p, int64_t c, int64_t r, int64_t s) const {
    const int64_t d = r * p.dil_h, j = d / p.stride_h, r0 = d % p.stride_h;
    return xs + ((s * phases + r0) * p.C + c) * plane + j * p.Q;
  }
};

// rows[tap] = the row of tap (c, r, s) of group g in the copies xs, for
// taps in (c, r, s) order.
void tap_rows(const float** rows, const float* xs, const Conv2dParams& p, const Copies& cp,
              int64_t g) {
  int64_t tap = 0;
  for (int64_t c = g * p.Cg(); c < (g + 1) * p.Cg(); ++c)
    for (int64_t r = 0; r < p.R; ++r)
      for (int64_t s = 0; s < p.S; ++s) rows[tap++] = cp.row(xs, p, c, r, s);
}

// (kb, v) tiles of Kg filters x PQ pixels for conv2d_forward_rows (the
// tap's row pointer is one more load).
Tile choose_tiles(int64_t Kg, int64_t PQ) {
  static constexpr Tile kOptions[] = {{6, 4}, {4, 6}, {5, 5}, {7, 3}, {3, 7}, {2, 7}, {1, 7}};
  return cheapest_tiles(kOptions, Kg, (PQ + 15) / 16, 1, 2);
}

// y_n (K, P, Q) = conv(x_n, w) + b (relu) for one image x_n (C, H, W),
// with the calling thread's workspaces; false if they cannot be allocated.
bool forward_shifted_image(float* y_n, const float* x_n, const float* w, const float* b,
                           const Conv2dParams& p, bool relu, const Copies& cp, const Tile& cfg) {
  const KernelTable& kt = kernels();
  const int64_t Kg = p.Kg(), taps = p.Cg() * p.R * p.S, PQ = p.P * p.Q;
  float* xs = thread_workspace(kSlotColumns, cp.image);
  // Tap pointers, in a float workspace of twice their count.
  float* rows_buf = thread_workspace(kSlotRows, 2 * taps);
  if (xs == nullptr || rows_buf == nullptr) return false;
  const float** rows = reinterpret_cast<const float**>(rows_buf);
  kt.conv2d_shift_image(xs, x_n, p, cp.Hp, cp.phases);
  for (int64_t g = 0; g < p.G; ++g) {
    tap_rows(rows, xs, p, cp, g);
    for (int64_t m0 = 0; m0 < PQ; m0 += 16 * cfg.b) {
      const int len = static_cast<int>(std::min<int64_t>(16 * cfg.b, PQ - m0));
      for (int64_t k0 = 0; k0 < Kg; k0 += cfg.a) {
        const int kb = static_cast<int>(std::min<int64_t>(cfg.a, Kg - k0));
        const int64_t k = g * Kg + k0;
        kt.conv2d_forward_rows(y_n + k * PQ + m0, PQ, w + k * taps, taps, rows, taps, m0, len, kb,
                               b ? b + k : nullptr, relu);
      }
    }
  }
  return true;
}

// y = conv(x, w) + b (relu) for padding >= 0, one image per task.
Status forward_shifted(float* y, const float* x, const float* w, const float* b,
                       const Conv2dParams& p, bool relu) {
  const Copies cp(p);
  const Tile cfg = choose_tiles(p.Kg(), p.P * p.Q);
  return parallel_for(p.N, [&](int64_t n) {
    return forward_shifted_image(y + n * p.K * p.P * p.Q, x + n * p.C * p.H * p.W, w, b, p, relu,
                                 cp, cfg);
  });
}

// The backward-input problem as a forward one: dy (N, K, P, Q) convolved
// with w' (C, K/G, R, S), w'[g*C/G + c][k][r][s] = w[g*K/G + k][c][R-1-r][S-1-s],
// padding dil*(R-1) - pad, gives dx (N, C, H, W).
Conv2dParams transposed_problem(const Conv2dParams& p) {
  Conv2dParams t = p;
  t.C = p.K;
  t.H = p.P;
  t.W = p.Q;
  t.K = p.C;
  t.P = p.H;
  t.Q = p.W;
  t.pad_top = p.dil_h * (p.R - 1) - p.pad_top;
  t.pad_bottom = p.dil_h * (p.R - 1) - p.pad_bottom;
  t.pad_left = p.dil_w * (p.S - 1) - p.pad_left;
  t.pad_right = p.dil_w * (p.S - 1) - p.pad_right;
  return t;
}

}  // namespace

bool conv2d_forward_shifted_applies(const Conv2dParams& p) {
  if (p.pad_top < 0 || p.pad_left < 0) return false;
  return kernels().conv2d_forward_rows(nullptr, 0, nullptr, 0, nullptr, 0, 0, 16, 1, nullptr,
                                       false);
}

Status conv2d_forward_shifted(float* y, const float* x, const float* w, const float* b,
                              const Conv2dParams& p, bool relu) {
  return forward_shifted(y, x, w, b, p, relu);
}

Status conv2d_forward_shifted_max_pool(float* pooled, int64_t* indices, const float* x,
                                       const float* w, const float* b, const Conv2dParams& p,
                                       bool relu, const Pool2dParams& pool) {
  const KernelTable& kt = kernels();
  const Copies cp(p);
  const Tile cfg = choose_tiles(p.Kg(), p.P * p.Q);
  const int64_t PQ = p.P * p.Q, pooled_plane = pool.P * pool.Q;
  return parallel_for(p.N, [&](int64_t n) {
    // The image's y stays in this thread's L2 between the two steps.
    float* y_n = thread_workspace(kSlotTile, p.K * PQ);
    if (y_n == nullptr ||
        !forward_shifted_image(y_n, x + n * p.C * p.H * p.W, w, b, p, relu, cp, cfg))
      return false;
    for (int64_t k = 0; k < p.K; ++k) {
      const int64_t i = n * p.K + k;  // the (n, k) plane
      kt.max_pool2d_forward(pooled + i * pooled_plane,
                            indices ? indices + i * pooled_plane : nullptr, y_n + k * PQ, pool);
    }
    return true;
  });
}

bool conv2d_backward_input_shifted_applies(const Conv2dParams& p, const float* w) {
  if (p.stride_h != 1 || p.stride_w != 1 || p.pad_top > p.dil_h * (p.R - 1) ||
      p.pad_left > p.dil_w * (p.S - 1) || !conv2d_forward_shifted_applies(transposed_problem(p)))
    return false;
  // The transposed problem pads dy with zeros, and 0 * inf would make NaN
  // where the gradient has none (col2im drops the taps in the padding): a
  // non-finite weight takes the per-plane kernel. (w null: the shape only.)
  if (w == nullptr) return true;
  const int64_t n = p.K * p.Cg() * p.R * p.S;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(w[i])) return false;
  return true;
}

Status conv2d_backward_input_shifted(float* dx, const float* dy, const float* w,
                                     const Conv2dParams& p) {
  const int64_t Kg = p.Kg(), Cg = p.Cg(), RS = p.R * p.S;
  float* wt = thread_workspace(kSlotWeights, p.K * Cg * RS);
  if (wt == nullptr)
    return Status::OutOfMemory("conv2d_backward: cannot allocate the flipped weights");
  for (int64_t g = 0; g < p.G; ++g)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t k = 0; k < Kg; ++k)
        for (int64_t rs = 0; rs < RS; ++rs)
          wt[((g * Cg + c) * Kg + k) * RS + rs] = w[((g * Kg + k) * Cg + c) * RS + (RS - 1 - rs)];
  return forward_shifted(dx, dy, wt, nullptr, transposed_problem(p), false);
}

bool conv2d_backward_weight_shifted_applies(const Conv2dParams& p) {
  return p.pad_top >= 0 && p.pad_left >= 0;
}

Status conv2d_backward_weight_shifted(float* dw_partials, const float* dy, const float* x,
                                      const Conv2dParams& p, const ChunkWave& wave) {
  const KernelTable& kt = kernels();
  const int64_t Kg = p.Kg(), Cg = p.Cg(), RS = p.R * p.S, taps = Cg * RS, PQ = p.P * p.Q;
  const Copies cp(p);
  const int64_t xs_image = cp.image;
  const int64_t chunks = weight_grad_chunks(p.N);
  const Tile cfg = choose_blocks(Kg, taps);
  // Images per sub-chunk: their shifted copies stay within 256 KB (L2).
  const int64_t sub_max = std::max<int64_t>(1, 65536 / std::max<int64_t>(xs_image, 1));
  return parallel_for(wave.count, [&](int64_t i) {
    const int64_t chunk = wave.first + i;
    const int64_t n_begin = chunk_begin(chunk, chunks, p.N),
                  n_end = chunk_begin(chunk + 1, chunks, p.N);
    float* dwc = dw_partials + i * p.K * taps;
    std::fill(dwc, dwc + p.K * taps, 0.0f);
    if (PQ == 0) return true;
    float* xs = thread_workspace(kSlotColumns, std::min(sub_max, n_end - n_begin) * xs_image);
    // Tap pointers, in a float workspace of twice their count.
    float* rows_buf = thread_workspace(kSlotRows, 2 * taps);
    if (xs == nullptr || rows_buf == nullptr) return false;
    const float** rows = reinterpret_cast<const float**>(rows_buf);
    const float* a[4];
    for (int64_t n0 = n_begin; n0 < n_end; n0 += sub_max) {
      const int64_t count = std::min(sub_max, n_end - n0);
      for (int64_t i = 0; i < count; ++i)
        kt.conv2d_shift_image(xs + i * xs_image, x + (n0 + i) * p.C * p.H * p.W, p, cp.Hp,
                              cp.phases);
      for (int64_t g = 0; g < p.G; ++g) {
        tap_rows(rows, xs, p, cp, g);
        for (int64_t k0 = 0; k0 < Kg; k0 += cfg.a) {
          const int kb = static_cast<int>(std::min<int64_t>(cfg.a, Kg - k0));
          for (int i = 0; i < kb; ++i) a[i] = dy + (n0 * p.K + g * Kg + k0 + i) * PQ;
          for (int64_t t0 = 0; t0 < taps; t0 += cfg.b) {
            const int t = static_cast<int>(std::min<int64_t>(cfg.b, taps - t0));
            kt.conv2d_dot_block(dwc + (g * Kg + k0) * taps + t0, taps, a, rows + t0, PQ, count,
                                p.K * PQ, xs_image, kb, t);
          }
        }
      }
    }
    return true;
  });
}

}  // namespace fastconv
