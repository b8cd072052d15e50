// The GEMM driver: BLIS's five loops around the ISA microkernel.
//
//   for jc in N by NC:            B panel (KC x NC) packed once, shared (L3)
//     for pc in K by KC:          K blocks in increasing order (never split)
//       pack B panel
//       for ic in M by MC:        A block (MC x KC) packed per task (L2)
//         for jr in NC by NR:     B micro-panel (KC x NR) stays in L1
//           for ir in MC by MR:   microkernel on one MR x NR tile of C
//
// Threads: the B panel is packed by all threads (one task per group of NR
// panels), then tasks of (ic block, range of jr panels) compute disjoint
// tiles of C. Which thread computes a tile never changes what is computed,
// so results are bitwise identical for any thread count. Small products run
// on the calling thread: waking a team costs more than they take.
#include "fastconv/gemm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>

#include "fastconv/dispatch.h"
#include "fastconv/threading.h"

namespace fastconv {
namespace {

// One table of register tiles and cache blocks per ISA (index: Isa).
//   KC: the B micro-panel KC x NR fits L1 (256 x 32 floats = 32 KB of 48 KB).
//   MC: the A block MC x KC sits in L2 (336 x 256 floats = 344 KB of 2 MB).
//   NC: the B panel KC x NC sits in L3 (256 x 4096 floats = 4 MB).
constexpr GemmBlocking kBlocking[kNumIsas] = {
    {4, 8, 128, 256, 2048, "sgemm_ukernel_4x8__scalar"},
    {6, 16, 144, 256, 4096, "sgemm_ukernel_6x16__avx2"},
    {14, 32, 336, 256, 4096, "sgemm_ukernel_14x32__avx512"},
};

// Below this many multiply-adds a product runs on the calling thread.
constexpr int64_t kSerialMacs = int64_t{1} << 21;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t packed_panels_size(int64_t outer, int64_t depth, int w) {
  return ceil_div(outer, w) * w * depth;
}

struct Plan {
  int64_t M, N, K;
  float alpha, beta;
  const GemmOperand& A;
  const GemmOperand& B;
  float* C;
  int64_t ldc;
  const GemmEpilogue& ep;
  GemmBlocking bl;
  const KernelTable& kt;
};

// C = beta * C + epilogue, for K == 0 or alpha == 0 (no product to add).
void scale_rows(const Plan& g, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    float* c = g.C + i * g.ldc;
    for (int64_t j = 0; j < g.N; ++j) {
      float v = g.beta == 0.0f ? 0.0f : g.beta * c[j];
      if (g.ep.row_bias) v += g.ep.row_bias[i];
      if (g.ep.col_bias) v += g.ep.col_bias[j];
      if (g.ep.relu && v < 0.0f) v = 0.0f;
      c[j] = v;
    }
  }
}

// Packs panels [p0, p1) of the B block (jc, pc) into Bp.
void pack_b_panels(const Plan& g, float* Bp, int64_t jc, int64_t nc, int64_t pc, int64_t kc,
                   int64_t p0, int64_t p1) {
  const int nr = g.bl.nr;
  const int64_t j0 = p0 * nr, j1 = std::min(nc, p1 * nr);
  g.B.pack(Bp + p0 * nr * kc, jc + j0, j1 - j0, pc, kc, nr);
}

// Computes the tiles of C in rows [i0, i0+mc) and B panels [p0, p1) of the
// block (jc, pc). Returns false if the A block cannot be allocated.
bool compute_block(const Plan& g, const float* Bp, int64_t jc, int64_t nc, int64_t pc,
                   int64_t kc, int64_t i0, int64_t mc, int64_t p0, int64_t p1) {
  const int mr = g.bl.mr, nr = g.bl.nr;
  const float* Ap = g.A.packed(i0, mc, pc, kc, mr);
  if (Ap == nullptr) {
    float* buf = thread_workspace(kSlotGemmA, packed_panels_size(g.bl.mc, kc, mr));
    if (buf == nullptr) return false;
    g.A.pack(buf, i0, mc, pc, kc, mr);
    Ap = buf;
  }
  GemmTile t;
  t.kc = kc;
  t.ldc = g.ldc;
  t.alpha = g.alpha;
  t.beta = g.beta;
  t.first = pc == 0;
  t.last = pc + kc == g.K;
  t.relu = g.ep.relu;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t j = p * nr;
    t.n = static_cast<int>(std::min<int64_t>(nr, nc - j));
    t.col_bias = g.ep.col_bias ? g.ep.col_bias + jc + j : nullptr;
    const float* b = Bp + p * nr * kc;
    for (int64_t ir = 0; ir < mc; ir += mr) {
      t.m = static_cast<int>(std::min<int64_t>(mr, mc - ir));
      t.row_bias = g.ep.row_bias ? g.ep.row_bias + i0 + ir : nullptr;
      g.kt.sgemm_ukernel(g.C + (i0 + ir) * g.ldc + jc + j, Ap + ir * kc, b, t);
    }
  }
  return true;
}

Status run(const Plan& g, bool threaded) {
  if (g.M == 0 || g.N == 0) return Status::Ok();
  threaded = threaded && get_num_threads() > 1 &&
             static_cast<double>(g.M) * g.N * g.K >= static_cast<double>(kSerialMacs);
  if (g.K == 0 || g.alpha == 0.0f) {
    if (!threaded) {
      scale_rows(g, 0, g.M);
      return Status::Ok();
    }
    return parallel_for(ceil_div(g.M, 64), [&](int64_t t) {
      scale_rows(g, t * 64, std::min(g.M, (t + 1) * 64));
      return true;
    });
  }
  const int nr = g.bl.nr;
  const int64_t n_ic = ceil_div(g.M, g.bl.mc);
  for (int64_t jc = 0; jc < g.N; jc += g.bl.nc) {
    const int64_t nc = std::min(g.bl.nc, g.N - jc);
    const int64_t panels = ceil_div(nc, nr);
    for (int64_t pc = 0; pc < g.K; pc += g.bl.kc) {
      const int64_t kc = std::min(g.bl.kc, g.K - pc);
      const float* Bp = g.B.packed(jc, nc, pc, kc, nr);
      if (Bp == nullptr) {
        float* buf = thread_workspace(kSlotGemmB, packed_panels_size(g.bl.nc, kc, nr));
        if (buf == nullptr) return Status::OutOfMemory("sgemm: cannot allocate the B panel");
        if (threaded) {
          constexpr int64_t kPanelsPerTask = 8;
          FASTCONV_RETURN_IF_ERROR(parallel_for(ceil_div(panels, kPanelsPerTask), [&](int64_t t) {
            pack_b_panels(g, buf, jc, nc, pc, kc, t * kPanelsPerTask,
                          std::min(panels, (t + 1) * kPanelsPerTask));
            return true;
          }));
        } else {
          pack_b_panels(g, buf, jc, nc, pc, kc, 0, panels);
        }
        Bp = buf;
      }
      if (!threaded) {
        for (int64_t ic = 0; ic < n_ic; ++ic) {
          const int64_t i0 = ic * g.bl.mc;
          if (!compute_block(g, Bp, jc, nc, pc, kc, i0, std::min(g.bl.mc, g.M - i0), 0, panels))
            return Status::OutOfMemory("sgemm: cannot allocate the A block");
        }
        continue;
      }
      // Enough tasks for every thread: split the jr panels when M has few
      // MC blocks (the A block is then packed once per task).
      const int64_t want = 2 * get_num_threads();
      const int64_t jr_split = std::min(panels, std::max<int64_t>(1, ceil_div(want, n_ic)));
      FASTCONV_RETURN_IF_ERROR(parallel_for(n_ic * jr_split, [&](int64_t t) {
        const int64_t ic = t / jr_split, s = t % jr_split;
        const int64_t i0 = ic * g.bl.mc;
        return compute_block(g, Bp, jc, nc, pc, kc, i0, std::min(g.bl.mc, g.M - i0),
                             s * panels / jr_split, (s + 1) * panels / jr_split);
      }));
    }
  }
  return Status::Ok();
}

Status check_dense_args(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, int64_t lda,
                        int64_t ldb, int64_t ldc) {
  if (M < 0 || N < 0 || K < 0) {
    return Status::InvalidArgument("sgemm: M, N, K must be >= 0, got " + std::to_string(M) +
                                   ", " + std::to_string(N) + ", " + std::to_string(K));
  }
  const int64_t a_cols = ta == Trans::kNo ? K : M;
  const int64_t b_cols = tb == Trans::kNo ? N : K;
  if (lda < std::max<int64_t>(a_cols, 1) || ldb < std::max<int64_t>(b_cols, 1) ||
      ldc < std::max<int64_t>(N, 1)) {
    return Status::InvalidArgument("sgemm: a leading dimension is smaller than its row length");
  }
  return Status::Ok();
}

}  // namespace

const GemmBlocking& gemm_blocking() { return kBlocking[static_cast<int>(isa_active())]; }

void DenseOperand::pack(float* dst, int64_t o0, int64_t no, int64_t k0, int64_t kd,
                        int w) const {
  for (int64_t p = 0; p * w < no; ++p) {
    float* panel = dst + p * w * kd;
    const int64_t ob = o0 + p * w;
    const int64_t n = std::min<int64_t>(w, no - p * w);
    if (!outer_major_) {
      // Rows of depth are contiguous along outer: copy n values per k.
      for (int64_t k = 0; k < kd; ++k) {
        const float* src = data_ + (k0 + k) * ld_ + ob;
        float* out = panel + k * w;
        std::memcpy(out, src, sizeof(float) * n);
        for (int64_t o = n; o < w; ++o) out[o] = 0.0f;
      }
    } else {
      // Each outer index is a contiguous row along depth: a transpose.
      kernels().sgemm_pack_transposed(panel, data_ + ob * ld_ + k0, ld_, n, kd, w);
    }
  }
}

int64_t PackedOperand::size(int64_t outer, int64_t depth, int w) {
  return packed_panels_size(outer, depth, w);
}

PackedOperand::PackedOperand(const GemmOperand& src, int64_t outer, int64_t depth, int w,
                             float* buf)
    : buf_(buf),
      outer_(outer),
      depth_(depth),
      outer_padded_(ceil_div(outer, w) * w),
      kc_(gemm_blocking().kc),
      w_(w) {
  // Layout: K blocks of kc_ (the GEMM's), each holding all panels.
  for (int64_t k0 = 0; k0 < depth; k0 += kc_)
    src.pack(buf_ + k0 * outer_padded_, 0, outer, k0, std::min(kc_, depth - k0), w);
}

const float* PackedOperand::packed(int64_t o0, int64_t no, int64_t k0, int64_t kd, int w) const {
  if (w != w_ || o0 % w != 0 || k0 % kc_ != 0 || kd != std::min(kc_, depth_ - k0) ||
      o0 + no > outer_)
    return nullptr;
  return buf_ + k0 * outer_padded_ + o0 * kd;
}

void PackedOperand::pack(float* dst, int64_t o0, int64_t no, int64_t k0, int64_t kd,
                         int w) const {
  // Only reached when a caller's blocking differs from the packed one:
  // unpack element by element.
  for (int64_t o = 0; o < ceil_div(no, w) * w; ++o) {
    for (int64_t k = 0; k < kd; ++k) {
      float v = 0.0f;
      const int64_t oo = o0 + o, kk = k0 + k;
      if (o < no) {
        const int64_t kb = kk / kc_ * kc_, kdb = std::min(kc_, depth_ - kb);
        v = buf_[kb * outer_padded_ + (oo / w_) * w_ * kdb + (kk - kb) * w_ + oo % w_];
      }
      dst[(o / w) * w * kd + k * w + o % w] = v;
    }
  }
}

Status gemm(int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A,
            const GemmOperand& B, float beta, float* C, int64_t ldc,
            const GemmEpilogue& epilogue) {
  const Plan g{M, N, K, alpha, beta, A, B, C, ldc, epilogue, gemm_blocking(), kernels()};
  return run(g, true);
}

bool gemm_serial(int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A,
                 const GemmOperand& B, float beta, float* C, int64_t ldc,
                 const GemmEpilogue& epilogue) {
  const Plan g{M, N, K, alpha, beta, A, B, C, ldc, epilogue, gemm_blocking(), kernels()};
  return run(g, false).ok();
}

Status sgemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
             int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  FASTCONV_RETURN_IF_ERROR(check_dense_args(ta, tb, M, N, K, lda, ldb, ldc));
  return gemm(M, N, K, alpha, DenseOperand::A(A, lda, ta), DenseOperand::B(B, ldb, tb), beta, C,
              ldc);
}

bool sgemm_serial(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                  int64_t ldc) {
  return gemm_serial(M, N, K, alpha, DenseOperand::A(A, lda, ta), DenseOperand::B(B, ldb, tb),
                     beta, C, ldc);
}

double fma_peak_gflops(int threads, double seconds) {
  const KernelTable& kt = kernels();
  using Clock = std::chrono::steady_clock;
  // Calibrate on one thread: iterations for `seconds`.
  float sink = 0.0f;
  int64_t iters = 1 << 16;
  for (;;) {
    const auto t0 = Clock::now();
    kt.fma_peak_probe(iters, &sink);
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    if (dt > 0.02) {
      iters = static_cast<int64_t>(static_cast<double>(iters) * seconds / dt) + 1;
      break;
    }
    iters *= 4;
  }
  std::atomic<double> flops{0.0};
  const auto t0 = Clock::now();
#pragma omp parallel num_threads(threads)
  {
    float s = 0.0f;
    const double f = kt.fma_peak_probe(iters, &s);
    double cur = flops.load();
    while (!flops.compare_exchange_weak(cur, cur + f)) {
    }
    if (s == 12345.0f) sink += s;  // keep the result alive
  }
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  return flops.load() / dt / 1e9;
}

Status linear_forward(float* y, const float* x, const float* w, const float* b, int64_t batch,
                      int64_t in_features, int64_t out_features) {
  GemmEpilogue ep;
  ep.col_bias = b;
  return gemm(batch, out_features, in_features, 1.0f, DenseOperand::A(x, in_features, Trans::kNo),
              DenseOperand::B(w, in_features, Trans::kYes), 0.0f, y, out_features, ep);
}

}  // namespace fastconv
