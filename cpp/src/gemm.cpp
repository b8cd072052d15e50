// The sgemm driver: transposes, alpha/beta, blocking and threads around the
// ISA kernel sgemm_nn_accumulate. Foundation version: block-packed operands
// and a vectorised row kernel; issue #4 replaces it with packed micro-panels
// and register-blocked microkernels behind the same entry points.
//
// Determinism: C is split into (MB x NB) tiles; each tile is computed by one
// thread, and every C element adds its K terms in the same order (KB blocks
// in increasing k) whatever the number of threads or the tiling of M and N.
#include "fastconv/gemm.h"

#include <string>

#include "fastconv/dispatch.h"
#include "fastconv/threading.h"

namespace fastconv {
namespace {

constexpr int64_t kMB = 64;   // rows of C per tile
constexpr int64_t kNB = 512;  // columns of C per tile: a C row block stays in L1/L2
constexpr int64_t kKB = 256;  // depth per packed block: B block (KB x NB) fits in L2

inline float elem(const float* A, int64_t lda, Trans t, int64_t i, int64_t k) {
  return t == Trans::kNo ? A[i * lda + k] : A[k * lda + i];
}

struct Gemm {
  Trans ta, tb;
  int64_t M, N, K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;

  int64_t tiles_m() const { return (M + kMB - 1) / kMB; }
  int64_t tiles_n() const { return (N + kNB - 1) / kNB; }

  // Computes tile t of C on the calling thread. False if out of memory.
  bool tile(int64_t t) const {
    const int64_t i0 = (t / tiles_n()) * kMB, j0 = (t % tiles_n()) * kNB;
    const int64_t mb = M - i0 < kMB ? M - i0 : kMB;
    const int64_t nb = N - j0 < kNB ? N - j0 : kNB;
    for (int64_t i = 0; i < mb; ++i) {
      float* c = C + (i0 + i) * ldc + j0;
      if (beta == 0.0f) {
        for (int64_t j = 0; j < nb; ++j) c[j] = 0.0f;  // never read C
      } else if (beta != 1.0f) {
        for (int64_t j = 0; j < nb; ++j) c[j] *= beta;
      }
    }
    if (K == 0 || alpha == 0.0f) return true;
    float* Ap = thread_workspace(kSlotGemmA, kMB * kKB);
    float* Bp = tb == Trans::kNo ? nullptr : thread_workspace(kSlotGemmB, kKB * kNB);
    if (Ap == nullptr || (tb == Trans::kYes && Bp == nullptr)) return false;
    for (int64_t k0 = 0; k0 < K; k0 += kKB) {
      const int64_t kb = K - k0 < kKB ? K - k0 : kKB;
      // Ap (mb, kb) = alpha * op(A)[i0:, k0:]
      for (int64_t i = 0; i < mb; ++i)
        for (int64_t k = 0; k < kb; ++k) Ap[i * kb + k] = alpha * elem(A, lda, ta, i0 + i, k0 + k);
      const float* b;
      int64_t ldb_blk;
      if (tb == Trans::kNo) {
        b = B + k0 * ldb + j0;
        ldb_blk = ldb;
      } else {  // Bp (kb, nb) = op(B)[k0:, j0:]
        for (int64_t k = 0; k < kb; ++k)
          for (int64_t j = 0; j < nb; ++j) Bp[k * nb + j] = B[(j0 + j) * ldb + k0 + k];
        b = Bp;
        ldb_blk = nb;
      }
      kernels().sgemm_nn_accumulate(C + i0 * ldc + j0, Ap, b, mb, nb, kb, kb, ldb_blk, ldc);
    }
    return true;
  }
};

Status check_args(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb,
                  int64_t ldc) {
  if (M < 0 || N < 0 || K < 0) {
    return Status::InvalidArgument("sgemm: M, N, K must be >= 0, got " + std::to_string(M) +
                                   ", " + std::to_string(N) + ", " + std::to_string(K));
  }
  const int64_t a_cols = ta == Trans::kNo ? K : M;
  const int64_t b_cols = tb == Trans::kNo ? N : K;
  if (lda < (a_cols > 1 ? a_cols : 1) || ldb < (b_cols > 1 ? b_cols : 1) ||
      ldc < (N > 1 ? N : 1)) {
    return Status::InvalidArgument("sgemm: a leading dimension is smaller than its row length");
  }
  return Status::Ok();
}

}  // namespace

bool sgemm_serial(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                  int64_t ldc) {
  const Gemm g{ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
  const int64_t tiles = g.tiles_m() * g.tiles_n();
  for (int64_t t = 0; t < tiles; ++t)
    if (!g.tile(t)) return false;
  return true;
}

Status sgemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
             int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  FASTCONV_RETURN_IF_ERROR(check_args(ta, tb, M, N, K, lda, ldb, ldc));
  if (M == 0 || N == 0) return Status::Ok();
  const Gemm g{ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
  return parallel_for(g.tiles_m() * g.tiles_n(), [&](int64_t t) { return g.tile(t); });
}

Status linear_forward(float* y, const float* x, const float* w, const float* b, int64_t batch,
                      int64_t in_features, int64_t out_features) {
  FASTCONV_RETURN_IF_ERROR(sgemm(Trans::kNo, Trans::kYes, batch, out_features, in_features, 1.0f,
                                 x, in_features, w, in_features, 0.0f, y, out_features));
  if (b != nullptr) {
    for (int64_t i = 0; i < batch; ++i)
      for (int64_t j = 0; j < out_features; ++j) y[i * out_features + j] += b[j];
  }
  return Status::Ok();
}

}  // namespace fastconv
