// What a GEMM microkernel call computes (see sgemm_ukernel in
// kernels/registry.inc). Plain data: ISA translation units include it.
#pragma once

#include <cstdint>

namespace fastconv {

// One MR x NR tile of C at c (leading dimension ldc), of which the first m
// rows and n columns are real:
//   acc = A panel (MR x kc, depth-major) * B panel (kc rows of NR, ldb apart)
//   C   = alpha * acc + (first ? beta * C : C)     (first && beta == 0: C is not read)
//   if last: C += row_bias[i] + col_bias[j]; if relu: C = max(C, 0) (NaN stays NaN)
struct GemmTile {
  int64_t kc = 0;
  int64_t ldc = 0;
  int64_t ldb = 0;  // floats between the k rows of the B panel (NR when packed)
  int m = 0, n = 0;
  float alpha = 1.0f, beta = 0.0f;
  bool first = true;                // the first K block: C is overwritten (beta == 0) or scaled
  bool last = true;                 // the last K block: the epilogue is applied
  const float* row_bias = nullptr;  // m values for this tile's rows, or null
  const float* col_bias = nullptr;  // n values for this tile's columns, or null
  bool relu = false;
};

}  // namespace fastconv
