// The avx512 kernel variants: the generic bodies of cpp/kernels/generic/ plus
// this directory's own kernels, compiled with this directory's flags only
// (see CMakeLists.txt), in namespace fastconv::avx512. Names in show_config()
// and tests: <kernel>__avx512.
#include <immintrin.h>

#include <cstdint>
#include <utility>

#include "kernels/kernel_table.h"

// clang-format off: the order of these includes matters (each file uses the ones above)
#define FASTCONV_ISA_NS avx512
#include "kernels/generic/common-inl.h"
#include "kernels/avx512/sgemm-ukernel-14x32-inl.h"
#include "kernels/avx512/sgemm-pack-inl.h"
#define FASTCONV_NATIVE_DOT_BLOCK     // conv2d-dot-inl.h has them
#define FASTCONV_NATIVE_FORWARD_ROWS
#define FASTCONV_NATIVE_SHIFT_IMAGE
#include "kernels/generic/conv2d-inl.h"
#include "kernels/avx512/conv2d-dot-inl.h"
#define FASTCONV_NATIVE_PATCH_KERNELS  // the file below has them
#include "kernels/generic/conv2d-patches-inl.h"
#include "kernels/avx512/conv2d-patches-inl.h"
#define FASTCONV_NATIVE_MAX_ROW_2X2S2  // the file below has it
#include "kernels/avx512/pool2d-inl.h"
#include "kernels/generic/pool2d-inl.h"
#include "kernels/generic/eltwise-inl.h"
#include "kernels/generic/table-inl.h"
// clang-format on

// The peak probe: 16 chains of 512-bit FMAs (enough to cover 4-cycle latency
// on two FMA ports); `fastconv bench --suite gemm` compares the GEMM with it.
#include "kernels/generic/fma-probe-inl.h"
FASTCONV_FMA_PROBE(__m512, 16, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps)
