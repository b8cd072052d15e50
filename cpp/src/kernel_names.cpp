// Kernel variant names, built from kernels/registry.inc and the active ISA's
// kernel table (its GEMM register tile).
#include "fastconv/kernel_names.h"

#include "fastconv/conv2d.h"
#include "fastconv/dispatch.h"
#include "kernels/kernel_table.h"

namespace fastconv {
namespace {

struct Entry {
  const char* name;
  bool tiled;  // the name carries the GEMM register tile
};
constexpr Entry kEntries[] = {
#define FASTCONV_KERNEL(name, tiled, ret, args) {#name, tiled},
#include "kernels/registry.inc"
#undef FASTCONV_KERNEL
};
constexpr int kCount = static_cast<int>(sizeof(kEntries) / sizeof(kEntries[0]));

}  // namespace

int kernel_count() { return kCount; }

const char* kernel_name(int i) { return (i >= 0 && i < kCount) ? kEntries[i].name : ""; }

std::string kernel_variant(int i) {
  if (i < 0 || i >= kCount) return "";
  std::string s = kEntries[i].name;
  if (kEntries[i].tiled) {
    const KernelTable& t = kernels();
    s += "_" + std::to_string(t.sgemm_mr) + "x" + std::to_string(t.sgemm_nr);
  }
  return s + "__" + isa_name(isa_active());
}

std::string kernel_variant(std::string_view name) {
  for (int i = 0; i < kCount; ++i)
    if (name == kEntries[i].name) return kernel_variant(i);
  return "";
}

std::vector<std::pair<std::string, std::string>> op_kernels() {
  const std::string gemm = kernel_variant("sgemm_ukernel");
  std::vector<std::pair<std::string, std::string>> out;
  for (ConvPass pass : {ConvPass::kForward, ConvPass::kBackwardInput, ConvPass::kBackwardWeight}) {
    const std::string op = std::string("conv2d_") + conv_pass_name(pass);
    for (ConvAlgo a : kConvAlgos) {
      if (a == ConvAlgo::kAuto) continue;
      const std::string algo = conv_algo_name(a);
      // direct: the pass's own kernel; im2col, implicit: their patch
      // handling around the GEMM microkernel.
      out.emplace_back(op + " (algo='" + algo + "')", a == ConvAlgo::kDirect
                                                          ? kernel_variant(op + "_direct")
                                                          : algo + " + " + gemm);
    }
  }
  out.emplace_back("conv2d_backward_bias", kernel_variant("conv2d_backward_bias"));
  out.emplace_back("conv2d (algo='auto')",
                   "per pass and shape: fastconv._core.conv2d_choose_algo(pass_, x_shape, "
                   "w_shape, stride, padding, dilation, groups)");
  for (const char* op :
       {"max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"})
    out.emplace_back(op, kernel_variant(op));
  out.emplace_back("linear", gemm);
  return out;
}

}  // namespace fastconv
