// sgemm_ukernel_6x16__avx2: the AVX2+FMA GEMM microkernel (see
// fastconv/gemm_tile.h for what one call computes).
//
// 6 rows x 16 columns of C in 12 ymm accumulators; each k step loads two B
// vectors and broadcasts 6 A values: 12 FMAs per 8 loads, 15 of the 16
// registers in use (the classic Haswell/Zen shape). Partial tiles: fewer rows
// run a variant compiled for that row count, fewer columns use masked loads
// and stores, so edge tiles round exactly like interior ones.
// Covered by tests/test_gemm.py (every m, n edge, every ISA).
#include <immintrin.h>

namespace fastconv {
namespace avx2 {

// The register tile: kSgemmMR rows x kSgemmNR columns of C (two vectors of 8).
constexpr int kSgemmMR = 6, kSgemmNR = 16;

static inline __m256i sgemm_mask8(int n) {  // lanes j < n set
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
}

static inline __m256 sgemm_finish(__m256 acc, const float* c, __m256i mask, const GemmTile& t,
                                  float row_bias, const float* col_bias) {
  __m256 v = t.alpha == 1.0f ? acc : _mm256_mul_ps(acc, _mm256_set1_ps(t.alpha));
  if (!t.first) {
    v = _mm256_add_ps(v, _mm256_maskload_ps(c, mask));
  } else if (t.beta != 0.0f) {
    v = _mm256_fmadd_ps(_mm256_set1_ps(t.beta), _mm256_maskload_ps(c, mask), v);
  }
  if (t.last) {
    if (t.row_bias) v = _mm256_add_ps(v, _mm256_set1_ps(row_bias));
    if (col_bias) v = _mm256_add_ps(v, _mm256_maskload_ps(col_bias, mask));
    if (t.relu) v = _mm256_max_ps(_mm256_setzero_ps(), v);  // max(0, NaN) = NaN
  }
  return v;
}

template <int M, class A>
static void sgemm_ukernel_rows(float* c, const A a, const float* b, const GemmTile& t) {
  __m256 acc[M][2];
  for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < t.kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
    const float* ak = a.at(k);
    for (int i = 0; i < M; ++i) {
      const __m256 ai = _mm256_broadcast_ss(ak + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    b += t.ldb;
  }
  const __m256i m0 = sgemm_mask8(t.n), m1 = sgemm_mask8(t.n - 8);
  const float* cb = t.last ? t.col_bias : nullptr;
  for (int i = 0; i < M; ++i) {
    float* ci = c + i * t.ldc;
    const float rb = (t.last && t.row_bias) ? t.row_bias[i] : 0.0f;
    _mm256_maskstore_ps(ci, m0, sgemm_finish(acc[i][0], ci, m0, t, rb, cb));
    if (t.n > 8)
      _mm256_maskstore_ps(ci + 8, m1,
                          sgemm_finish(acc[i][1], ci + 8, m1, t, rb, cb ? cb + 8 : nullptr));
  }
}

template <class A>
static void sgemm_ukernel_m(float* c, const A a, const float* b, const GemmTile& t) {
  static_assert(kSgemmMR == 6, "one case per row count 1..MR");
  switch (t.m) {
    case 6: return sgemm_ukernel_rows<6>(c, a, b, t);
    case 5: return sgemm_ukernel_rows<5>(c, a, b, t);
    case 4: return sgemm_ukernel_rows<4>(c, a, b, t);
    case 3: return sgemm_ukernel_rows<3>(c, a, b, t);
    case 2: return sgemm_ukernel_rows<2>(c, a, b, t);
    default: return sgemm_ukernel_rows<1>(c, a, b, t);
  }
}

}  // namespace avx2
}  // namespace fastconv

#include "kernels/generic/sgemm-ukernel-inl.h"  // sgemm_ukernel, sgemm_ukernel_indirect
