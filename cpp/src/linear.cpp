// Linear layers: each pass is one GEMM (fastconv/gemm.h), the bias gradient
// a column sum.
#include "fastconv/linear.h"

#include <algorithm>

#include "fastconv/gemm.h"
#include "fastconv/threading.h"

namespace fastconv {
namespace {

// The leading dimension of rows of n floats: at least 1 (the GEMM's rule),
// also for an empty dimension.
inline int64_t ld(int64_t n) { return std::max<int64_t>(n, 1); }

}  // namespace

Status linear_forward(float* y, const float* x, const float* w, const float* b,
                      const LinearParams& p) {
  GemmEpilogue ep;
  ep.col_bias = b;
  return gemm(p.B, p.O, p.I, 1.0f, DenseOperand::A(x, p.I, Trans::kNo),
              DenseOperand::B(w, p.I, Trans::kYes), 0.0f, y, p.O, ep);
}

Status linear_backward_input(float* dx, const float* dy, const float* w, const LinearParams& p) {
  // dx (B,I) = dy (B,O) * w (O,I): w is depth-major along O for B.
  return gemm(p.B, p.I, p.O, 1.0f, DenseOperand::A(dy, ld(p.O), Trans::kNo),
              DenseOperand::B(w, ld(p.I), Trans::kNo), 0.0f, dx, ld(p.I));
}

Status linear_backward_weight(float* dw, const float* dy, const float* x, const LinearParams& p) {
  // dw (O,I) = dy^T (O,B) * x (B,I).
  return gemm(p.O, p.I, p.B, 1.0f, DenseOperand::A(dy, ld(p.O), Trans::kYes),
              DenseOperand::B(x, ld(p.I), Trans::kNo), 0.0f, dw, ld(p.I));
}

Status linear_backward_bias(float* db, const float* dy, const LinearParams& p) {
  const int64_t batch = p.B, out_features = p.O;
  constexpr int64_t kCols = 256;  // columns per task
  return parallel_for((out_features + kCols - 1) / kCols, [&](int64_t t) {
    const int64_t j0 = t * kCols, j1 = std::min(out_features, j0 + kCols);
    double acc[kCols] = {};
    for (int64_t i = 0; i < batch; ++i)
      for (int64_t j = j0; j < j1; ++j) acc[j - j0] += dy[i * out_features + j];
    for (int64_t j = j0; j < j1; ++j) db[j] = static_cast<float>(acc[j - j0]);
    return true;
  });
}

}  // namespace fastconv
