// The avx2 kernel variants: the portable bodies of cpp/kernels/portable/
// compiled with this directory's flags only (see CMakeLists.txt), in namespace
// fastconv::avx2. Names in show_config() and tests: <kernel>__avx2.
#include <cstdint>

#include "fastconv/dispatch.h"
#include "fastconv/gemm_tile.h"
#include "fastconv/shapes.h"

#define FASTCONV_ISA_NS avx2
#include "kernels/portable/common-inl.h"
#include "kernels/avx2/sgemm-ukernel-6x16-inl.h"
#include "kernels/avx2/sgemm-pack-inl.h"
#include "kernels/portable/conv2d-inl.h"
#include "kernels/portable/conv2d-patches-inl.h"
#include "kernels/portable/pool2d-inl.h"
#include "kernels/portable/eltwise-inl.h"
#include "kernels/avx2/fma-probe-inl.h"
#include "kernels/portable/table-inl.h"
