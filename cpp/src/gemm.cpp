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
#include <cstring>
#include <string>

#include "fastconv/dispatch.h"
#include "fastconv/threading.h"
#include "kernels/kernel_table.h"

namespace fastconv {
namespace {

// One table of cache blocks per ISA (index: Isa); the register tile MR x NR
// is the ISA's kernel table's.
//   MC: the A block MC x KC sits in L2 (avx512: 336 x 512 floats = 688 KB of 2 MB).
//   KC: every K block reads and writes all of C once, so KC is as large as
//       the A block allows: on Sapphire Rapids KC = 512 beat 256 by 13% at
//       2048^3 (C of 16 MB lives in L3), although the B micro-panel
//       (512 x 32 floats) then streams from L2 instead of sitting in L1.
//   NC: the B panel KC x NC sits in L3 (512 x 4096 floats = 8 MB).
// Measured with a C++ harness around gemm() (see docs/gemm.md).
struct CacheBlocks {
  int64_t mc, kc, nc;
};
constexpr CacheBlocks kCacheBlocks[kNumIsas] = {
    {128, 256, 2048},  // scalar
    {144, 256, 4096},  // avx2
    {336, 512, 4096},  // avx512
};

// Below this many multiply-adds a product runs on the calling thread.
constexpr int64_t kSerialMacs = int64_t{1} << 21;

// B is read in place (not packed) when C has at most this many MR panels of
// rows: each B micro-panel then feeds so few microkernel calls that copying
// it costs as much as using it (mnist conv2 as one GEMM, 64 x 15488 x 288:
// packing B moved 36 MB for 0.57 GFLOP).
constexpr int64_t kInPlaceBPanels = 6;
// ... and only when its rows are close together: with rows 62 KB apart (the
// same GEMM) every k step of a micro-panel touches a new page, and packing
// wins again.
constexpr int64_t kInPlaceMaxLd = 2048;

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

// The NR panels of one B block: packed (KC x NR each, contiguous), or read in
// place with the matrix's stride, except a ragged last panel, which is
// packed (zero-padded) so that the microkernel never reads past the matrix.
struct BPanels {
  bool stream = false;            // pack each panel just before use (see run())
  const float* packed = nullptr;  // all panels, kc * nr floats apart
  const float* direct = nullptr;  // panel p at direct + p*nr, rows ld apart
  int64_t ld = 0;
  const float* tail = nullptr;  // the packed last panel when direct
  int64_t tail_panel = -1;
  int64_t kc = 0;
  int nr = 0;
  const float* panel(int64_t p, int64_t* ldb) const {
    if (direct == nullptr) {
      *ldb = nr;
      return packed + p * nr * kc;
    }
    if (p == tail_panel) {
      *ldb = nr;
      return tail;
    }
    *ldb = ld;
    return direct + p * nr;
  }
};

// Computes the tiles of C in rows [i0, i0+mc) and B panels [p0, p1) of the
// block (jc, pc). Returns false if the A block cannot be allocated.
bool compute_block(const Plan& g, const BPanels& bp, int64_t jc, int64_t nc, int64_t pc, int64_t kc,
                   int64_t i0, int64_t mc, int64_t p0, int64_t p1) {
  const int mr = g.bl.mr, nr = g.bl.nr;
  const float* Ap = g.A.packed(i0, mc, pc, kc, mr);
  if (Ap == nullptr) {
    // Even row blocks may exceed MC by one panel.
    float* buf = thread_workspace(kSlotGemmA, packed_panels_size(g.bl.mc + mr, kc, mr));
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
    const float* b;
    if (bp.stream) {  // pack this panel now, into this thread's buffer (it stays in L1/L2)
      float* buf = thread_workspace(kSlotGemmB, packed_panels_size(nr, kc, nr));
      if (buf == nullptr) return false;
      g.B.pack(buf, jc + j, t.n, pc, kc, nr);
      b = buf;
      t.ldb = nr;
    } else {
      b = bp.panel(p, &t.ldb);
    }
    for (int64_t ir = 0; ir < mc; ir += mr) {
      t.m = static_cast<int>(std::min<int64_t>(mr, mc - ir));
      t.row_bias = g.ep.row_bias ? g.ep.row_bias + i0 + ir : nullptr;
      g.kt.sgemm_ukernel(g.C + (i0 + ir) * g.ldc + jc + j, Ap + ir * kc, b, t);
    }
  }
  return true;
}

// How the rows of C are cut into A blocks: n blocks of whole MR panels, as
// even as possible (sizes differ by at most one panel), at most MC rows each.
struct RowBlocks {
  int64_t panels, n;  // MR panels of M, blocks
  int mr;
  int64_t threads_sharing = 0;  // rows split among this many threads (0: not split)
};
RowBlocks row_blocks(const Plan& g, int threads, bool split_rows) {
  RowBlocks rb;
  rb.mr = g.bl.mr;
  rb.panels = ceil_div(g.M, g.bl.mr);
  rb.n = ceil_div(g.M, g.bl.mc);
  // Splitting rows among threads: a multiple of the thread count, or one
  // thread would get more rows than another (1024 rows in blocks of at most
  // 336 would be 336+336+336+16: one of two threads does 2/3).
  if (split_rows) {
    rb.n = std::min(rb.panels, ceil_div(rb.n, threads) * threads);
    rb.threads_sharing = threads;
  }
  return rb;
}

// The B panels of block (jc, pc): where they come from, and how many packing
// tasks they need (0: prepacked; 1 for only a ragged last panel read in place).
BPanels b_panels(const Plan& g, const RowBlocks& rb, float* buf, int64_t jc, int64_t nc, int64_t pc,
                 int64_t kc) {
  BPanels bp;
  bp.kc = kc;
  bp.nr = g.bl.nr;
  bp.packed = g.B.packed(jc, nc, pc, kc, bp.nr);
  if (bp.packed != nullptr) return bp;
  if (rb.panels <= kInPlaceBPanels) {
    bp.direct = g.B.in_place(jc, pc, &bp.ld);
    if (bp.ld > kInPlaceMaxLd) bp.direct = nullptr;
  }
  if (bp.direct != nullptr) {
    if (nc % bp.nr != 0) {
      bp.tail_panel = ceil_div(nc, bp.nr) - 1;
      bp.tail = buf;
    }
  } else if (rb.n == 1 || rb.n == rb.threads_sharing) {
    // One row block: each B panel is used by one pass of the microkernel,
    // right after it is packed. Packing it into a shared NC-wide buffer would
    // send it to L3 and back (mnist conv2 as one GEMM: a 4.7 MB panel).
    bp.stream = true;
  } else {
    bp.packed = buf;
  }
  return bp;
}

Status run(const Plan& g, bool threaded) {
  if (g.M == 0 || g.N == 0) return Status::Ok();
  const int threads =
      threaded && static_cast<double>(g.M) * g.N * g.K >= static_cast<double>(kSerialMacs)
          ? team_threads()
          : 1;
  threaded = threads > 1;
  if (g.K == 0 || g.alpha == 0.0f) {
    return parallel_for(threaded ? ceil_div(g.M, 64) : 1, [&](int64_t t) {
      const int64_t rows = threaded ? 64 : g.M;
      scale_rows(g, t * rows, std::min(g.M, (t + 1) * rows));
      return true;
    });
  }
  const int nr = g.bl.nr;
  // How threads share the work of a (jc, pc) block. Splitting the columns
  // keeps each thread on the B panels it packed itself (in its own L2) but
  // makes every thread pack all A blocks; splitting the rows does the
  // opposite: every thread reads all of the B panel, half of it packed by
  // the other core. So: split the larger operand. (Measured on 2 cores:
  // 256x729x2400 scaled 1.67x with rows split, 1.94x with columns split.)
  const bool split_cols = threads > 1 && g.M <= std::min(g.bl.nc, g.N);
  const RowBlocks rb = row_blocks(g, threads, threads > 1 && !split_cols);
  // The B panel buffer shared by the threads (the calling thread's; when
  // panels are streamed instead, each thread reuses its own slot).
  float* bbuf = thread_workspace(
      kSlotGemmB, packed_panels_size(std::min(g.bl.nc, g.N), std::min(g.bl.kc, g.K), nr));
  if (bbuf == nullptr) return Status::OutOfMemory("sgemm: cannot allocate the B panel");
  std::atomic<bool> failed{false};  // a task could not allocate its A block
  Interruptible intr;

  // One parallel region for the whole product; every thread walks the same
  // (jc, pc) blocks and meets the same two barriers per block: the B panels
  // are packed (work-shared), then the tiles of C are computed (work-shared).
  // Static schedules give thread i the i-th share of both loops, so with
  // columns split a thread computes on the panels it packed. After a failure
  // or an interrupt the remaining tasks do nothing: no thread leaves the
  // loops early and the barriers stay matched.
  Team team(threads);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const TeamMember member(team);
    for (int64_t jc = 0; jc < g.N; jc += g.bl.nc) {
      const int64_t nc = std::min(g.bl.nc, g.N - jc);
      const int64_t panels = ceil_div(nc, nr);
      const int64_t col_parts = split_cols ? std::min<int64_t>(panels, threads) : 1;
      for (int64_t pc = 0; pc < g.K; pc += g.bl.kc) {
        const int64_t kc = std::min(g.bl.kc, g.K - pc);
        const BPanels bp = b_panels(g, rb, bbuf, jc, nc, pc, kc);
        const int64_t pack_tasks =
            bp.packed == bbuf ? std::min<int64_t>(panels, threads) : (bp.tail ? 1 : 0);
#pragma omp for schedule(static)
        for (int64_t t = 0; t < pack_tasks; ++t) {
          if (bp.tail != nullptr) {
            const int64_t j = bp.tail_panel * nr;
            g.B.pack(bbuf, jc + j, nc - j, pc, kc, nr);
          } else {
            pack_b_panels(g, bbuf, jc, nc, pc, kc, t * panels / pack_tasks,
                          (t + 1) * panels / pack_tasks);
          }
        }
        // Task t: column part t / rb.n, row block t % rb.n.
#pragma omp for schedule(static)
        for (int64_t t = 0; t < col_parts * rb.n; ++t) {
          if (failed.load(std::memory_order_relaxed) || intr.stop()) continue;
          const int64_t part = t / rb.n, b = t % rb.n;
          const int64_t i0 = b * rb.panels / rb.n * rb.mr;
          const int64_t mc = std::min(g.M, (b + 1) * rb.panels / rb.n * rb.mr) - i0;
          if (!compute_block(g, bp, jc, nc, pc, kc, i0, mc, part * panels / col_parts,
                             (part + 1) * panels / col_parts))
            failed.store(true);
        }
      }
    }
  }
  if (failed.load()) return Status::OutOfMemory("sgemm: cannot allocate the A block");
  if (intr.interrupted()) return Status::Interrupted();
  return Status::Ok();
}

Status check_dense_args(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, int64_t lda,
                        int64_t ldb, int64_t ldc) {
  if (M < 0 || N < 0 || K < 0) {
    return Status::InvalidArgument("sgemm: M, N, K must be >= 0, got " + std::to_string(M) + ", " +
                                   std::to_string(N) + ", " + std::to_string(K));
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

GemmBlocking gemm_blocking() {
  const KernelTable& kt = kernels();
  const CacheBlocks& cb = kCacheBlocks[static_cast<int>(isa_active())];
  return {kt.sgemm_mr, kt.sgemm_nr, cb.mc, cb.kc, cb.nc};
}

void DenseOperand::pack(float* dst, int64_t o0, int64_t no, int64_t k0, int64_t kd, int w) const {
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

void PackedOperand::pack(float* dst, int64_t o0, int64_t no, int64_t k0, int64_t kd, int w) const {
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

Status gemm_on(bool threaded, int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A,
               const GemmOperand& B, float beta, float* C, int64_t ldc,
               const GemmEpilogue& epilogue) {
  const Plan g{M, N, K, alpha, beta, A, B, C, ldc, epilogue, gemm_blocking(), kernels()};
  return run(g, threaded);
}

Status gemm(int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A,
            const GemmOperand& B, float beta, float* C, int64_t ldc, const GemmEpilogue& epilogue) {
  return gemm_on(true, M, N, K, alpha, A, B, beta, C, ldc, epilogue);
}

Status gemm_serial(int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A,
                   const GemmOperand& B, float beta, float* C, int64_t ldc,
                   const GemmEpilogue& epilogue) {
  return gemm_on(false, M, N, K, alpha, A, B, beta, C, ldc, epilogue);
}

Status sgemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
             int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  FASTCONV_RETURN_IF_ERROR(check_dense_args(ta, tb, M, N, K, lda, ldb, ldc));
  return gemm(M, N, K, alpha, DenseOperand::A(A, lda, ta), DenseOperand::B(B, ldb, tb), beta, C,
              ldc);
}

Status sgemm_serial(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc) {
  return gemm_serial(M, N, K, alpha, DenseOperand::A(A, lda, ta), DenseOperand::B(B, ldb, tb), beta,
                     C, ldc);
}

Status gemm_for_each(int64_t count, const std::function<Status(int64_t, bool)>& body) {
  if (count >= 2 * team_threads())
    return parallel_for(count, [&](int64_t i) { return body(i, false); });
  for (int64_t i = 0; i < count; ++i) FASTCONV_RETURN_IF_ERROR(body(i, true));
  return Status::Ok();
}

}  // namespace fastconv
