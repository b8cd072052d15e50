// Elementwise kernels (generic bodies, vectorised by the compiler for each
// ISA). Covered by tests/test_eltwise.py.

namespace fastconv {
namespace FASTCONV_ISA_NS {

// y (n) = max(x, 0), NaN kept: the comparison is false for NaN.
void relu_forward(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

// dx (n) = dy where y > 0, else 0.
void relu_backward(float* dx, const float* dy, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

}  // namespace FASTCONV_ISA_NS
}  // namespace fastconv
