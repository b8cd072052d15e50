// fma_peak_probe (portable): the baseline has no FMA; 8 chains of 128-bit
// multiply and add give its peak of the same shape (see the AVX-512 probe).
#include <emmintrin.h>

namespace fastconv {
namespace FASTCONV_ISA_NS {

double fma_peak_probe(int64_t iters, float* sink) {
  __m128 acc[8];
  for (int i = 0; i < 8; ++i) acc[i] = _mm_set1_ps(1e-3f * static_cast<float>(i));
  const __m128 a = _mm_set1_ps(0.999999f), b = _mm_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 8; ++i) acc[i] = _mm_add_ps(_mm_mul_ps(acc[i], a), b);
  __m128 s = acc[0];
  for (int i = 1; i < 8; ++i) s = _mm_add_ps(s, acc[i]);
  float out[4];
  _mm_storeu_ps(out, s);
  *sink = out[0] + out[1] + out[2] + out[3];
  return static_cast<double>(iters) * 8 * 4 * 2;
}

}  // namespace FASTCONV_ISA_NS
}  // namespace fastconv
