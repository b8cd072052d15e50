// The kernel table: one function pointer per entry of kernels/registry.inc,
// plus the GEMM register tile, filled once per ISA by that ISA's translation
// unit (cpp/kernels/<isa>/kernels__<isa>.cpp, compiled with its flags).
//
// Included by the kernel translation units, by dispatch.cpp (which fills the
// tables and chooses one) and by the drivers that call kernels. It knows
// nothing of dispatch: kernels never include fastconv/dispatch.h, so the
// include graph runs one way (drivers -> dispatch.h, and drivers, kernels ->
// this file -> registry.inc).
#pragma once

#include <cstdint>

#include "fastconv/conv2d_patches.h"
#include "fastconv/gemm_tile.h"
#include "fastconv/shapes.h"

namespace fastconv {

struct KernelTable {
  // The register tile of sgemm_ukernel and sgemm_ukernel_indirect: MR rows by
  // NR columns of C (the packers' panel widths, gemm_blocking(), and part of
  // the microkernel's variant name).
  int sgemm_mr, sgemm_nr;
#define FASTCONV_KERNEL(name, tiled, ret, args) ret(*name) args;
#include "kernels/registry.inc"
#undef FASTCONV_KERNEL
};

// The table of the active ISA (dispatch.cpp).
const KernelTable& kernels();

// Defined by each ISA translation unit, inside its namespace, and compiled
// with its flags: called only after isa_cpu_supports() said yes.
//   fill_kernel_table: the ISA's table.
//   fma_peak_probe: iters steps of independent multiply-add chains, nothing
//     else; returns the flops done and writes their sum to sink. The FP32
//     peak probe of the benchmarks (fma_peak.cpp), not a kernel of any op.
namespace scalar {
void fill_kernel_table(KernelTable* t);
double fma_peak_probe(int64_t iters, float* sink);
}  // namespace scalar
namespace avx2 {
void fill_kernel_table(KernelTable* t);
double fma_peak_probe(int64_t iters, float* sink);
}  // namespace avx2
namespace avx512 {
void fill_kernel_table(KernelTable* t);
double fma_peak_probe(int64_t iters, float* sink);
}  // namespace avx512

}  // namespace fastconv
