// GEMM inner kernel (portable body). The driver (cpp/src/gemm.cpp) handles
// transposes, alpha, beta, blocking and threads; this adds one block product.
// Covered by tests/test_gemm.py.

namespace fastconv {
namespace FASTCONV_ISA_NS {

// C (M,N) += A (M,K) * B (K,N). The j loop vectorises; for each C element
// the k terms are added in order.
void sgemm_nn_accumulate(float* C, const float* A, const float* B, int64_t M, int64_t N,
                         int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* __restrict c = C + i * ldc;
    for (int64_t k = 0; k < K; ++k) {
      const float a = A[i * lda + k];
      const float* __restrict b = B + k * ldb;
      for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
    }
  }
}

}  // namespace FASTCONV_ISA_NS
}  // namespace fastconv
