// The scalar kernel variants: the baseline x86-64 (SSE2) level (the only
// level on other CPUs, e.g. aarch64) and the
// fallback correct for every shape. The generic bodies of cpp/kernels/generic/
// plus this directory's GEMM, compiled with the baseline flags only (see
// CMakeLists.txt), in namespace fastconv::scalar. Names in show_config() and
// tests: <kernel>__scalar.
#if defined(__SSE2__) || defined(_M_X64)
#define FASTCONV_SCALAR_SSE2 1
#include <emmintrin.h>
#endif

#include <cstdint>

#include "kernels/kernel_table.h"

// clang-format off: the order of these includes matters (each file uses the ones above)
#define FASTCONV_ISA_NS scalar
#include "kernels/generic/common-inl.h"
#include "kernels/scalar/sgemm-ukernel-4x8-inl.h"
#include "kernels/scalar/sgemm-pack-inl.h"
#include "kernels/generic/conv2d-inl.h"
#include "kernels/generic/conv2d-patches-inl.h"
#include "kernels/generic/pool2d-inl.h"
#include "kernels/generic/eltwise-inl.h"
#include "kernels/generic/table-inl.h"
// clang-format on

// The peak probe: the baseline has no FMA, so 8 chains of 128-bit multiply
// then add give its peak of the same shape.
#include "kernels/generic/fma-probe-inl.h"
#ifdef FASTCONV_SCALAR_SSE2
namespace fastconv {
namespace scalar {
static inline __m128 mul_add_sse2(__m128 a, __m128 b, __m128 c) {
  return _mm_add_ps(_mm_mul_ps(a, b), c);
}
}  // namespace scalar
}  // namespace fastconv
FASTCONV_FMA_PROBE(__m128, 8, _mm_set1_ps, mul_add_sse2, _mm_add_ps, _mm_storeu_ps)
#else
// Other CPUs (aarch64 until it has NEON kernels): four lanes in a plain
// struct, which the compiler maps onto the baseline vector unit.
namespace fastconv {
namespace scalar {
struct Lanes4 {
  float v[4];
};
static inline Lanes4 set1_lanes4(float x) { return {{x, x, x, x}}; }
static inline Lanes4 mul_add_lanes4(Lanes4 a, Lanes4 b, Lanes4 c) {
  for (int i = 0; i < 4; ++i) a.v[i] = a.v[i] * b.v[i] + c.v[i];
  return a;
}
static inline Lanes4 add_lanes4(Lanes4 a, Lanes4 b) {
  for (int i = 0; i < 4; ++i) a.v[i] += b.v[i];
  return a;
}
static inline void storeu_lanes4(float* p, Lanes4 a) {
  for (int i = 0; i < 4; ++i) p[i] = a.v[i];
}
}  // namespace scalar
}  // namespace fastconv
FASTCONV_FMA_PROBE(Lanes4, 8, set1_lanes4, mul_add_lanes4, add_lanes4, storeu_lanes4)
#endif
