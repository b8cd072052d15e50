// The implicit-GEMM algorithm: the whole batch as one GEMM per group, with
// the patch matrix never written out.
//
//   forward:  y'_g (N*P*Q, K/G) = patches_g (N*P*Q, C/G*R*S) * w_g^T + b_g
//
// Rows of the GEMM are output pixels (n, p, q) of the whole batch, so small
// images fill the microkernel's MR-row tile (Keras conv3: 9 pixels per image,
// 1,152 rows at N = 128), and columns are output channels, which fill its
// NR-column tile for the usual channel counts (32, 64, 96, 128, ...).
//
// Threads take blocks of pixel rows. A task packs its A block (MC pixels x
// KC taps) straight from the images into MR-row panels (the column matrix of
// im2col is never built), multiplies it by the weights (packed once per call
// as NR-column panels), accumulates into a small per-task tile of C (MC x
// K/G, in L2) and, after the last K block, transposes that tile into y's
// NCHW planes. A task writes only its own pixels; every output adds its taps
// in the same order (KC blocks in increasing order, then the microkernel's k
// loop) whatever the blocking or the thread count, so results are bitwise
// identical for any number of threads.
//
// Backward-weight reduces over the pixels of a chunk of images (see
// weight_grad_chunks) in one GEMM whose depth runs across the images:
//
//   dw_g (K/G, C/G*R*S) = dy_g (K/G, pixels) * patches_g (pixels, C/G*R*S)
//
// with both operands packed straight from dy and x (a few pixels' patches
// at a time), where im2col ran one GEMM of depth P*Q per image (9 for Keras
// conv3, 1 for LeNet conv3).
//
// Backward-input is im2col's (the gradient of the patch matrix, added back
// where each patch was read: col2im), a block of one image's pixels at a time,
//
//   dpatches (pixels, R*S*C/G) = dy' (pixels, K/G) * w_g (K/G, R*S*C/G)
//
// with dy packed like a 1x1 patch matrix and the taps ordered (r, s, c), so
// that one pixel's gradient for one (r, s) is C/G contiguous values: they are
// added to an H x W x C/G (channels-last) buffer with whole vectors, which is
// then transposed into dx's planes. (Added back into NCHW planes, a 3x3 output
// row of an MNIST-sized layer is 3 scattered values.) A task owns one image's
// dx, so the additions never race and run in the same order for any thread
// count.
#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "conv2d_internal.h"
#include "fastconv/conv2d_patches.h"
#include "fastconv/gemm.h"
#include "fastconv/threading.h"
#include "kernels/kernel_table.h"

namespace fastconv {
namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The weights w (K, C/G, R, S) of group g as B operand: outer = output
// channel k of the group, depth = tap (c, r, s). Row k is contiguous.
DenseOperand forward_weights(const float* w, const Conv2dParams& p, int64_t g) {
  const int64_t CRS = p.Cg() * p.R * p.S;
  return DenseOperand(w + g * p.Kg() * CRS, CRS, /*outer_major=*/true);
}

// The weights of group g as backward-input's B operand: outer = tap
// (r, s, c) with c fastest (so that a pixel's gradient for one (r, s) is
// C/G contiguous values, added to the C/G contiguous channels of an HWC
// buffer), depth = output channel k: element w[g*K/G + k][c][r][s].
class WeightsByTap final : public GemmOperand {
 public:
  WeightsByTap(const float* w, const Conv2dParams& p, int64_t g) : w_(w), p_(p), g_(g) {}
  void pack(float* dst, int64_t o0, int64_t no, int64_t k0, int64_t kd, int wd) const override {
    const int64_t Cg = p_.Cg(), CRS = Cg * p_.R * p_.S;
    for (int64_t o = 0; o < ceil_div(no, wd) * wd; ++o) {
      float* col = dst + (o / wd) * wd * kd + o % wd;
      if (o >= no) {
        for (int64_t k = 0; k < kd; ++k) col[k * wd] = 0.0f;
        continue;
      }
      const int64_t tap = o0 + o, c = tap % Cg, rs = tap / Cg;  // rs = r*S + s
      const float* src = w_ + (g_ * p_.Kg() + k0) * CRS + c * p_.R * p_.S + rs;
      for (int64_t k = 0; k < kd; ++k) col[k * wd] = src[k * CRS];
    }
  }

 private:
  const float* w_;
  const Conv2dParams& p_;
  int64_t g_;
};

// dy_g as the A operand of the weight gradient: outer = output channel k of
// group g, depth = pixel of images [n0, ...) in batch order. Each (n, k)
// plane of dy is a contiguous row along the pixels of one image.
class DyRows final : public GemmOperand {
 public:
  DyRows(const float* dy, const Conv2dParams& p, int64_t g, int64_t n0)
      : dy_(dy), p_(p), g_(g), n0_(n0) {}
  void pack(float* dst, int64_t o0, int64_t no, int64_t k0, int64_t kd, int w) const override {
    const KernelTable& kt = kernels();
    const int64_t PQ = p_.P * p_.Q;
    for (int64_t o = 0; o < no; o += w) {
      float* panel = dst + (o / w) * w * kd;
      const int64_t rows = std::min<int64_t>(w, no - o);
      for (int64_t d = 0; d < kd;) {  // one image's pixels at a time
        const int64_t m = k0 + d, n = n0_ + m / PQ, pq = m % PQ, len = std::min(PQ - pq, kd - d);
        const float* src = dy_ + (n * p_.K + g_ * p_.Kg() + o0 + o) * PQ + pq;
        kt.sgemm_pack_transposed(panel + d * w, src, PQ, rows, len, w);
        d += len;
      }
    }
  }

 private:
  const float* dy_;
  const Conv2dParams& p_;
  int64_t g_, n0_;
};

// The patches of group g as the B operand of the weight gradient: outer =
// tap (c, r, s), depth = pixel of images [n0, ...) in batch order.
class PatchColumns final : public GemmOperand {
 public:
  PatchColumns(const PatchSource& s, int64_t n0) : s_(s), m0_(n0 * s.P * s.Q) {}
  void pack(float* dst, int64_t o0, int64_t no, int64_t k0, int64_t kd, int w) const override {
    kernels().conv2d_pack_patches_transposed(dst, s_, m0_ + k0, kd, o0, no, w);
  }

 private:
  const PatchSource& s_;
  int64_t m0_;
};

// tile (mb, ncols), ldc apart (+)= the packed A block (mb pixels x kd, MR-row
// panels) times the K block at pc of b (ncols columns of NR-wide panels);
// first / last, the column bias and relu as in GemmTile.
void multiply_block(float* tile, int64_t ldc, const float* a, int64_t mb, const PackedOperand& b,
                    int64_t ncols, int64_t pc, int64_t kd, bool first, bool last,
                    const float* col_bias, bool relu = false) {
  const GemmBlocking& bl = gemm_blocking();
  const KernelTable& kt = kernels();
  const int mr = bl.mr, nr = bl.nr;
  GemmTile t;
  t.ldc = ldc;
  t.ldb = nr;
  t.kc = kd;
  t.first = first;
  t.last = last;
  t.relu = relu;
  for (int64_t j = 0; j < ncols; j += nr) {
    const int64_t n = std::min<int64_t>(nr, ncols - j);
    const float* bp = b.packed(j, n, pc, kd, nr);
    t.n = static_cast<int>(n);
    t.col_bias = col_bias ? col_bias + j : nullptr;
    for (int64_t i = 0; i < mb; i += mr) {
      t.m = static_cast<int>(std::min<int64_t>(mr, mb - i));
      kt.sgemm_ukernel(tile + i * ldc + j, a + i * kd, bp, t);
    }
  }
}

// y (N, K, P, Q) for the pixels of one task, from its C tile (mb x Kg,
// row-major, ldc apart): y[n][g*Kg + k][p][q] = tile[pixel][k], one image's
// run of pixels at a time (a transpose: each channel's pixels are contiguous
// in y).
void store_tile(float* y, const float* tile, int64_t ldc, const PatchSource& s, int64_t K,
                int64_t g, int64_t Kg, int64_t m0, int64_t mb) {
  const KernelTable& kt = kernels();
  const int64_t PQ = s.P * s.Q;
  for (int64_t m = m0; m < m0 + mb;) {
    const int64_t n = m / PQ, pq0 = m % PQ, len = std::min(PQ - pq0, m0 + mb - m);
    kt.conv2d_transpose_block(y + (n * K + g * Kg) * PQ + pq0, PQ, tile + (m - m0) * ldc, ldc, len,
                              Kg);
    m += len;
  }
}

// y = the convolution described by `s` with the weights of each group
// packed as B operands (outer Kg, depth Cg*R*S), + bias (may be null).
// The same product with A read in place (an indirection buffer, no packing):
// a task takes whole output rows, each split into panels of at most MR
// pixels, and for every tap a panel's row pointer goes straight into x when
// the tap stays inside the image (a copy only at the borders). The
// microkernel then reads A from wherever the image rows are in L2 instead of
// streaming a packed block, which is slower per FMA; it pays where each A
// panel meets few column panels (K/G <= 64) and rows are short (8 to 32
// pixels, a panel of 11 of 14 rows loses little). A/B in alternating
// processes, 1 thread: LeNet conv2 1.37-1.73 -> 1.19-1.50 ms, Keras conv2
// 7.2-8.4 -> 7.2-7.5; but AlexNet conv2 (K = 256) 133-137 -> 141-146 and
// VGG 3x3 (Q = 56) 44-47 -> 47-48, which keep the packed A.
Status implicit_gemm_indirect(float* y, const PatchSource& s, int64_t N, int64_t K, int64_t G,
                              const float* bias, bool relu,
                              const std::vector<PackedOperand>& weights) {
  const GemmBlocking& bl = gemm_blocking();
  const KernelTable& kt = kernels();
  const int mr = bl.mr, nr = bl.nr;
  const int64_t Kg = K / G, CRS = s.Cg * s.R * s.S, Q = s.Q, rows_total = N * s.P;
  const int64_t panels_per_row = ceil_div(Q, mr);
  // Output rows per task: about MC pixels, fewer when that leaves the
  // threads under four tasks each.
  const int64_t want = ceil_div(rows_total, 4 * int64_t{team_threads()});
  const int64_t rows_max = std::clamp<int64_t>(want, 1, std::max<int64_t>(1, bl.mc / Q));
  const int64_t blocks = ceil_div(rows_total, rows_max);
  const int64_t ldc = Kg, kd_max = std::min(bl.kc, CRS);
  static const float kZeros[16] = {};
  return parallel_for(blocks * G, [&](int64_t task) {
    const int64_t g = task % G, row0 = task / G * rows_max;
    const int64_t nrows = std::min(rows_max, rows_total - row0);
    const int64_t m0 = row0 * Q, mb = nrows * Q, npanels = nrows * panels_per_row;
    PatchSource sg = s;
    sg.g = g;
    float* tile = thread_workspace(kSlotTile, mb * ldc);
    float* scratch = thread_workspace(kSlotGemmA, npanels * kd_max * 16);
    // Pointers, in a float workspace of twice their count (64-byte aligned).
    float* rows_buf = thread_workspace(kSlotRows, npanels * kd_max * 2);
    if (tile == nullptr || scratch == nullptr || rows_buf == nullptr) return false;
    const float** rows = reinterpret_cast<const float**>(rows_buf);
    GemmTile t;
    t.ldc = ldc;
    t.ldb = nr;
    t.relu = relu;
    for (int64_t pc = 0; pc < CRS; pc += bl.kc) {
      const int64_t kd = std::min(bl.kc, CRS - pc);
      for (int64_t pn = 0; pn < npanels; ++pn) {  // panel pn: row pn / ppr, piece pn % ppr
        const int64_t i = pn / panels_per_row * Q + pn % panels_per_row * mr;
        const int m = static_cast<int>(std::min<int64_t>(mr, Q - pn % panels_per_row * mr));
        kt.conv2d_patch_rows(rows + pn * kd, scratch + pn * kd * 16, kZeros, sg, m0 + i, m, pc, kd);
      }
      t.kc = kd;
      t.first = pc == 0;
      t.last = pc + kd == CRS;
      for (int64_t j = 0; j < Kg; j += nr) {
        const int64_t n = std::min<int64_t>(nr, Kg - j);
        const float* bp = weights[static_cast<size_t>(g)].packed(j, n, pc, kd, nr);
        t.n = static_cast<int>(n);
        t.col_bias = bias ? bias + g * Kg + j : nullptr;
        for (int64_t pn = 0; pn < npanels; ++pn) {
          const int64_t i = pn / panels_per_row * Q + pn % panels_per_row * mr;
          t.m = static_cast<int>(std::min<int64_t>(mr, Q - pn % panels_per_row * mr));
          kt.sgemm_ukernel_indirect(tile + i * ldc + j, rows + pn * kd, bp, t);
        }
      }
    }
    store_tile(y, tile, ldc, s, K, g, Kg, m0, mb);
    return true;
  });
}

Status implicit_gemm(float* y, const PatchSource& s, int64_t N, int64_t K, int64_t G,
                     const float* bias, bool relu, const std::vector<PackedOperand>& weights) {
  if (s.stride_w == 1 && s.Q >= 8 && s.Q <= 32 && K / G <= 2 * gemm_blocking().nr)
    return implicit_gemm_indirect(y, s, N, K, G, bias, relu, weights);
  const GemmBlocking& bl = gemm_blocking();
  const KernelTable& kt = kernels();
  const int mr = bl.mr;
  const int64_t Kg = K / G, CRS = s.Cg * s.R * s.S, M = N * s.P * s.Q;
  // Pixel rows per task: at most MC (the A block stays in L2), fewer when
  // that leaves the threads under four tasks each; any blocking gives the
  // same results.
  const int64_t want = ceil_div(M, 4 * int64_t{team_threads()});
  const int64_t mb_max = std::clamp<int64_t>(ceil_div(want, mr) * mr, mr, bl.mc);
  const int64_t blocks = ceil_div(M, mb_max);
  const int64_t ldc = Kg;
  return parallel_for(blocks * G, [&](int64_t task) {
    const int64_t g = task % G, m0 = task / G * mb_max, mb = std::min(mb_max, M - m0);
    PatchSource sg = s;
    sg.g = g;
    float* tile = thread_workspace(kSlotTile, ceil_div(mb, mr) * mr * ldc);
    float* a = thread_workspace(kSlotGemmA, ceil_div(mb, mr) * mr * std::min(bl.kc, CRS));
    if (tile == nullptr || a == nullptr) return false;
    for (int64_t pc = 0; pc < CRS; pc += bl.kc) {
      const int64_t kd = std::min(bl.kc, CRS - pc);
      kt.conv2d_pack_patches(a, sg, m0, mb, pc, kd, mr);
      multiply_block(tile, ldc, a, mb, weights[static_cast<size_t>(g)], Kg, pc, kd, pc == 0,
                     pc + kd == CRS, bias ? bias + g * Kg : nullptr, relu);
    }
    store_tile(y, tile, ldc, s, K, g, Kg, m0, mb);
    return true;
  });
}

// Packs every group's B operand (outer Kg, depth CRS) into the calling
// thread's weight workspace.
Status pack_weights(std::vector<PackedOperand>* out, int64_t G, int64_t Kg, int64_t CRS,
                    const std::function<void(int64_t, std::vector<PackedOperand>*, float*)>& add) {
  const int nr = gemm_blocking().nr;
  const int64_t per_group = PackedOperand::size(Kg, CRS, nr);
  float* buf = thread_workspace(kSlotWeights, per_group * G);
  if (buf == nullptr) return Status::OutOfMemory("conv2d: cannot allocate the packed weights");
  out->reserve(static_cast<size_t>(G));
  for (int64_t g = 0; g < G; ++g) add(g, out, buf + g * per_group);
  return Status::Ok();
}

}  // namespace

Status conv2d_forward_implicit(float* y, const float* x, const float* w, const float* b,
                               const Conv2dParams& p, bool relu) {
  const int64_t Kg = p.Kg(), CRS = p.Cg() * p.R * p.S;
  std::vector<PackedOperand> weights;
  FASTCONV_RETURN_IF_ERROR(pack_weights(
      &weights, p.G, Kg, CRS, [&](int64_t g, std::vector<PackedOperand>* v, float* buf) {
        v->emplace_back(forward_weights(w, p, g), Kg, CRS, gemm_blocking().nr, buf);
      }));
  const PatchSource s{x,   p.C,        p.H,        p.W,     p.Cg(),  p.R,        p.S,        p.P,
                      p.Q, p.stride_h, p.stride_w, p.dil_h, p.dil_w, -p.pad_top, -p.pad_left};
  return implicit_gemm(y, s, p.N, p.K, p.G, b, relu, weights);
}

Status conv2d_backward_weight_implicit(float* dw_partials, const float* dy, const float* x,
                                       const Conv2dParams& p, const ChunkWave& wave) {
  const int64_t Kg = p.Kg(), CRS = p.Cg() * p.R * p.S, PQ = p.P * p.Q;
  const int64_t chunks = weight_grad_chunks(p.N);
  const PatchSource s{x,   p.C,        p.H,        p.W,     p.Cg(),  p.R,        p.S,        p.P,
                      p.Q, p.stride_h, p.stride_w, p.dil_h, p.dil_w, -p.pad_top, -p.pad_left};
  return parallel_for(wave.count * p.G, [&](int64_t task) {
    const int64_t i = task / p.G, chunk = wave.first + i, g = task % p.G;
    const int64_t n0 = chunk_begin(chunk, chunks, p.N), n1 = chunk_begin(chunk + 1, chunks, p.N);
    float* dw = dw_partials + i * p.K * CRS + g * Kg * CRS;
    PatchSource sg = s;
    sg.g = g;
    return gemm_serial(Kg, CRS, (n1 - n0) * PQ, 1.0f, DyRows(dy, p, g, n0), PatchColumns(sg, n0),
                       0.0f, dw, CRS);
  });
}

Status conv2d_backward_input_implicit(float* dx, const float* dy, const float* w,
                                      const Conv2dParams& p) {
  const GemmBlocking& bl = gemm_blocking();
  const KernelTable& kt = kernels();
  const int mr = bl.mr;
  const int64_t Kg = p.Kg(), Cg = p.Cg(), RSC = p.R * p.S * Cg, PQ = p.P * p.Q, HW = p.H * p.W;
  std::vector<PackedOperand> weights;
  FASTCONV_RETURN_IF_ERROR(pack_weights(
      &weights, p.G, RSC, Kg, [&](int64_t g, std::vector<PackedOperand>* v, float* buf) {
        v->emplace_back(WeightsByTap(w, p, g), RSC, Kg, bl.nr, buf);
      }));
  // dy read as a patch matrix with a 1x1 kernel: patch((n, p, q), k) = dy[n][g*K/G + k][p][q].
  const PatchSource dy_src{dy, p.K, p.P, p.Q, Kg, 1, 1, p.P, p.Q, 1, 1, 1, 1, 0, 0};
  // Where the taps land in dx: the forward problem's geometry.
  const PatchSource dx_geom{nullptr,    p.C,     p.H,     p.W,        Cg,
                            p.R,        p.S,     p.P,     p.Q,        p.stride_h,
                            p.stride_w, p.dil_h, p.dil_w, -p.pad_top, -p.pad_left};
  // Pixels per block: the tile (pixels x taps) stays near 1 MB.
  const int64_t mb_max =
      std::clamp<int64_t>((262144 / std::max<int64_t>(RSC, 1)) / mr * mr, mr, bl.mc);
  const int64_t mb_cap = std::min(mb_max, PQ);
  return parallel_for(p.N * p.G, [&](int64_t task) {  // one image's group: its dx is the task's
    const int64_t n = task / p.G, g = task % p.G;
    float* tile = thread_workspace(kSlotTile, ceil_div(mb_cap, mr) * mr * RSC);
    float* hwc = thread_workspace(kSlotColumns, HW * Cg);
    float* a = thread_workspace(kSlotGemmA, ceil_div(mb_cap, mr) * mr * std::min(bl.kc, Kg));
    if (tile == nullptr || hwc == nullptr || a == nullptr) return false;
    std::fill(hwc, hwc + HW * Cg, 0.0f);
    PatchSource dys = dy_src;
    dys.g = g;
    for (int64_t pq0 = 0; pq0 < PQ; pq0 += mb_max) {
      const int64_t mb = std::min(mb_max, PQ - pq0);
      // tile (mb, R*S*Cg) = dy' (mb pixels, K/G) * w_g (K/G, taps (r, s, c))
      for (int64_t pc = 0; pc < Kg; pc += bl.kc) {
        const int64_t kd = std::min(bl.kc, Kg - pc);
        kt.conv2d_pack_patches(a, dys, n * PQ + pq0, mb, pc, kd, mr);
        multiply_block(tile, RSC, a, mb, weights[static_cast<size_t>(g)], RSC, pc, kd, pc == 0,
                       pc + kd == Kg, nullptr);
      }
      kt.conv2d_col2im_hwc_add(hwc, tile, RSC, dx_geom, pq0, mb);
    }
    // dx planes (Cg, H*W) = hwc (H*W, Cg)^T
    kt.conv2d_transpose_block(dx + (n * p.C + g * Cg) * HW, HW, hwc, Cg, HW, Cg);
    return true;
  });
}

}  // namespace fastconv
