// conv2d_dot_block__avx512 (see kernels/registry.inc for what it computes).
//
// kb x t dot products at once, 16 pixels per step: kb rows of a (dy planes)
// and t rows of b (shifted image rows) are loaded once per step and every
// pair meets in one FMA, so a step costs kb + t loads for kb * t FMAs (3 x 9:
// 12 loads, 27 FMAs, 27 of the 32 registers as accumulators). The lanes are
// added up once, after the last image. A ragged last step uses masked loads
// (masked-off lanes are zeros and never fault).
#include <immintrin.h>

namespace fastconv {
namespace avx512 {

namespace {  // internal linkage: no weak symbol of AVX-512 code (test_gemm.py)

template <int KB, int T>
void dot_block(float* out, int64_t ldo, const float* const* a, const float* const* b, int64_t len,
               int64_t count, int64_t ld_a, int64_t ld_b) {
  __m512 acc[KB][T];
  for (int i = 0; i < KB; ++i)
    for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_ps();
  const float* ap[KB];
  const float* bp[T];
  for (int i = 0; i < KB; ++i) ap[i] = a[i];
  for (int j = 0; j < T; ++j) bp[j] = b[j];
  const int64_t full = len / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (len - full)) - 1);
  for (int64_t c = 0; c < count; ++c) {
    for (int64_t m = 0; m < full; m += 16) {
      __m512 av[KB];
      for (int i = 0; i < KB; ++i) av[i] = _mm512_loadu_ps(ap[i] + m);
      for (int j = 0; j < T; ++j) {
        const __m512 bv = _mm512_loadu_ps(bp[j] + m);
        for (int i = 0; i < KB; ++i) acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
      }
    }
    if (tail) {
      __m512 av[KB];
      for (int i = 0; i < KB; ++i) av[i] = _mm512_maskz_loadu_ps(tail, ap[i] + full);
      for (int j = 0; j < T; ++j) {
        const __m512 bv = _mm512_maskz_loadu_ps(tail, bp[j] + full);
        for (int i = 0; i < KB; ++i) acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
      }
    }
    for (int i = 0; i < KB; ++i) ap[i] += ld_a;
    for (int j = 0; j < T; ++j) bp[j] += ld_b;
  }
  for (int i = 0; i < KB; ++i)
    for (int j = 0; j < T; ++j) out[i * ldo + j] += _mm512_reduce_add_ps(acc[i][j]);
}

using DotBlockFn = void (*)(float*, int64_t, const float* const*, const float* const*, int64_t,
                            int64_t, int64_t, int64_t);

template <int KB, int... Ts>
constexpr DotBlockFn dot_block_for(int t, std::integer_sequence<int, Ts...>) {
  constexpr DotBlockFn fns[] = {&dot_block<KB, Ts + 1>...};
  return fns[t - 1];
}

}  // namespace

bool conv2d_dot_block(float* out, int64_t ldo, const float* const* a, const float* const* b,
                      int64_t len, int64_t count, int64_t ld_a, int64_t ld_b, int kb, int t) {
  if (t < 1 || t > 9 || kb < 1 || kb > 4 || (kb == 4 && t > 7)) return false;
  if (out == nullptr) return true;  // the caller asks whether (kb, t) is supported
  DotBlockFn fn = nullptr;
  switch (kb) {
    case 1: fn = dot_block_for<1>(t, std::make_integer_sequence<int, 9>{}); break;
    case 2: fn = dot_block_for<2>(t, std::make_integer_sequence<int, 9>{}); break;
    case 3: fn = dot_block_for<3>(t, std::make_integer_sequence<int, 9>{}); break;
    default: fn = dot_block_for<4>(t, std::make_integer_sequence<int, 7>{}); break;
  }
  fn(out, ldo, a, b, len, count, ld_a, ld_b);
  return true;
}

}  // namespace avx512
}  // namespace fastconv
