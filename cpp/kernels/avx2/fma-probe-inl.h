// fma_peak_probe__avx2: 12 independent chains of 256-bit FMAs: the FP32 FMA
// peak of the AVX2 path (see the AVX-512 probe).
#include <immintrin.h>

namespace fastconv {
namespace avx2 {

double fma_peak_probe(int64_t iters, float* sink) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(1e-3f * static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  *sink = out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
  return static_cast<double>(iters) * 12 * 8 * 2;
}

}  // namespace avx2
}  // namespace fastconv
