// The scalar kernel variants: the portable bodies of cpp/kernels/portable/
// compiled with this directory's flags only (see CMakeLists.txt), in namespace
// fastconv::scalar. Names in show_config() and tests: <kernel>__scalar.
#include <cstdint>

#include "fastconv/dispatch.h"
#include "fastconv/gemm_tile.h"
#include "fastconv/shapes.h"

#define FASTCONV_ISA_NS scalar
#include "kernels/portable/common-inl.h"
#include "kernels/portable/gemm-inl.h"
#include "kernels/portable/conv2d-inl.h"
#include "kernels/portable/conv2d-patches-inl.h"
#include "kernels/portable/pool2d-inl.h"
#include "kernels/portable/eltwise-inl.h"
#include "kernels/portable/fma-probe-inl.h"
#include "kernels/portable/table-inl.h"
