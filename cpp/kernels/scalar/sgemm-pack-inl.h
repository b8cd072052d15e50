// sgemm_pack_transposed__scalar: packs one GEMM panel from an outer-major
// source (a transpose; see the AVX-512 version), one element at a time.
// Covered by tests/test_gemm.py.

namespace fastconv {
namespace scalar {

// Packs one panel from an outer-major source (a transpose):
// dst[k*w + o] = src[o*ld + k] for o < n, zeros for n <= o < w.
void sgemm_pack_transposed(float* dst, const float* src, int64_t ld, int64_t n, int64_t kd, int w) {
  for (int64_t o = 0; o < w; ++o) {
    if (o < n) {
      const float* row = src + o * ld;
      for (int64_t k = 0; k < kd; ++k) dst[k * w + o] = row[k];
    } else {
      for (int64_t k = 0; k < kd; ++k) dst[k * w + o] = 0.0f;
    }
  }
}

}  // namespace scalar
}  // namespace fastconv
