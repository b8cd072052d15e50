// The names of the kernel variants: the registry's entries as compiled for
// the active ISA, and the variant each op runs (show_config()). Names follow
// <op>_<pass>_<algo>__<isa> (XNNPACK's rule); the same strings appear in
// show_config(), test ids and benchmark rows.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fastconv {

// The registry's entries in order, by base name ("conv2d_forward_direct").
int kernel_count();
const char* kernel_name(int i);  // "" outside [0, kernel_count())

// The full name of entry i (or of the entry with that base name) on the
// active ISA: conv2d_forward_direct__avx512, or with the register tile for
// the GEMM microkernel, sgemm_ukernel_14x32__avx512. "" for no such entry.
// The one place where these names are built.
std::string kernel_variant(int i);
std::string kernel_variant(std::string_view name);

// (op, what it runs on the active ISA), show_config()["kernels"]:
// "conv2d_forward (algo='direct')" -> "conv2d_forward_direct__avx512",
// "conv2d_forward (algo='im2col')" -> "im2col + sgemm_ukernel_14x32__avx512",
// the pools, the bias gradient, linear (the GEMM microkernel), and for
// algo='auto' where to ask which algorithm it runs for a shape.
std::vector<std::pair<std::string, std::string>> op_kernels();

}  // namespace fastconv
