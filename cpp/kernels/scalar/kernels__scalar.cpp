// The scalar kernel variants: the baseline x86-64 (SSE2) level and the
// fallback correct for every shape. The generic bodies of cpp/kernels/generic/
// plus this directory's GEMM, compiled with the baseline flags only (see
// CMakeLists.txt), in namespace fastconv::scalar. Names in show_config() and
// tests: <kernel>__scalar.
#include <emmintrin.h>

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
namespace fastconv {
namespace scalar {
static inline __m128 mul_add_sse2(__m128 a, __m128 b, __m128 c) {
  return _mm_add_ps(_mm_mul_ps(a, b), c);
}
}  // namespace scalar
}  // namespace fastconv
FASTCONV_FMA_PROBE(__m128, 8, _mm_set1_ps, mul_add_sse2, _mm_add_ps, _mm_storeu_ps)
