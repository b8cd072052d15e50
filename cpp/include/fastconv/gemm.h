// The one GEMM of fastconv, and linear layers on top of it.
//
// Every GEMM-based path (im2col convolution forward and backward, linear)
// calls sgemm or sgemm_serial; nothing else multiplies matrices.
#pragma once

#include <cstdint>

#include "fastconv/status.h"

namespace fastconv {

enum class Trans { kNo = 0, kYes = 1 };

// C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C.
// Row-major with leading dimensions: op(A)[i][p] is A[i*lda + p] (kNo) or
// A[p*lda + i] (kYes); likewise for B. beta == 0 never reads C (C may hold
// NaN). The k loop is never split across threads, so the result is bitwise
// identical for any thread count.
Status sgemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
             int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The same on the calling thread only: for use inside a parallel region.
// Returns false only when its workspace cannot be allocated.
bool sgemm_serial(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                  int64_t ldc);

// y (B,O) = x (B,I) * w (O,I)^T + b (O); b may be null. As PyTorch's linear.
Status linear_forward(float* y, const float* x, const float* w, const float* b, int64_t batch,
                      int64_t in_features, int64_t out_features);

}  // namespace fastconv
