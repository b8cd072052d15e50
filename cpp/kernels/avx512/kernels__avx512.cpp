// The avx512 kernel variants: the portable bodies of cpp/kernels/portable/
// compiled with this directory's flags only (see CMakeLists.txt), in namespace
// fastconv::avx512. Names in show_config() and tests: <kernel>__avx512.
#include <cstdint>
#include <utility>

#include "fastconv/dispatch.h"
#include "fastconv/gemm_tile.h"
#include "fastconv/shapes.h"

#define FASTCONV_ISA_NS avx512
#include "kernels/portable/common-inl.h"
#include "kernels/avx512/sgemm-ukernel-14x32-inl.h"
#include "kernels/avx512/sgemm-pack-inl.h"
#define FASTCONV_NATIVE_DOT_BLOCK     // conv2d-dot-inl.h has them
#define FASTCONV_NATIVE_FORWARD_ROWS
#define FASTCONV_NATIVE_SHIFT_IMAGE
#include "kernels/portable/conv2d-inl.h"
#include "kernels/avx512/conv2d-dot-inl.h"
#define FASTCONV_NATIVE_PATCH_KERNELS  // the file below has them
#include "kernels/portable/conv2d-patches-inl.h"
#include "kernels/avx512/conv2d-patches-inl.h"
#define FASTCONV_NATIVE_MAX_ROW_2X2S2  // the file below has it
#include "kernels/avx512/pool2d-inl.h"
#include "kernels/portable/pool2d-inl.h"
#include "kernels/portable/eltwise-inl.h"
#include "kernels/avx512/fma-probe-inl.h"
#include "kernels/portable/table-inl.h"
