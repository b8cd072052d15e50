// fma_peak_probe__avx512: 16 independent chains of 512-bit FMAs (enough to
// cover 4-cycle latency on two FMA ports), nothing else: the FP32 FMA peak
// that `fastconv bench --suite gemm` compares the GEMM with.
#include <immintrin.h>

namespace fastconv {
namespace avx512 {

double fma_peak_probe(int64_t iters, float* sink) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(1e-3f * static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, acc[i]);
  float out[16];
  _mm512_storeu_ps(out, s);
  float t = 0.0f;
  for (int i = 0; i < 16; ++i) t += out[i];
  *sink = t;
  return static_cast<double>(iters) * 16 * 16 * 2;
}

}  // namespace avx512
}  // namespace fastconv
