// The avx2 kernel variants: the generic bodies of cpp/kernels/generic/ plus
// this directory's GEMM, compiled with this directory's flags only (see
// CMakeLists.txt), in namespace fastconv::avx2. Names in show_config() and
// tests: <kernel>__avx2.
#include <immintrin.h>

#include <cstdint>

#include "kernels/kernel_table.h"

// clang-format off: the order of these includes matters (each file uses the ones above)
#define FASTCONV_ISA_NS avx2
#include "kernels/generic/common-inl.h"
#include "kernels/avx2/sgemm-ukernel-6x16-inl.h"
#include "kernels/avx2/sgemm-pack-inl.h"
#include "kernels/generic/conv2d-inl.h"
#include "kernels/generic/conv2d-patches-inl.h"
#include "kernels/generic/pool2d-inl.h"
#include "kernels/generic/eltwise-inl.h"
#include "kernels/generic/table-inl.h"
// clang-format on

// The peak probe: 12 chains of 256-bit FMAs.
#include "kernels/generic/fma-probe-inl.h"
FASTCONV_FMA_PROBE(__m256, 12, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps)
