// sgemm_ukernel_4x8__scalar: the baseline's GEMM microkernel (see
// fastconv/gemm_tile.h for what one call computes). Plain loops over a 4x8
// tile of accumulators, which the compiler keeps in SSE registers; correct
// for every m <= 4, n <= 8. Covered by tests/test_gemm.py.

namespace fastconv {
namespace scalar {

// The register tile: kSgemmMR rows x kSgemmNR columns of C.
constexpr int kSgemmMR = 4, kSgemmNR = 8;

template <class A>
static void sgemm_ukernel_m(float* c, const A a, const float* b, const GemmTile& t) {
  constexpr int MR = kSgemmMR, NR = kSgemmNR;
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < t.kc; ++k) {
    const float* ak = a.at(k);
    for (int i = 0; i < t.m; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += ak[i] * b[j];
    b += t.ldb;
  }
  for (int i = 0; i < t.m; ++i) {
    float* ci = c + i * t.ldc;
    for (int j = 0; j < t.n; ++j) {
      float v = t.alpha == 1.0f ? acc[i][j] : acc[i][j] * t.alpha;
      if (!t.first) {
        v += ci[j];
      } else if (t.beta != 0.0f) {
        v += t.beta * ci[j];
      }
      if (t.last) {
        if (t.row_bias) v += t.row_bias[i];
        if (t.col_bias) v += t.col_bias[j];
        if (t.relu && v < 0.0f) v = 0.0f;  // NaN stays NaN
      }
      ci[j] = v;
    }
  }
}

}  // namespace scalar
}  // namespace fastconv

#include "kernels/generic/sgemm-ukernel-inl.h"  // sgemm_ukernel, sgemm_ukernel_indirect
