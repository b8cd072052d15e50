// Fills the kernel table of this ISA from the registry: one pointer per
// entry, to <name> in namespace fastconv::FASTCONV_ISA_NS, and the GEMM
// register tile of the ISA's microkernel file (kSgemmMR x kSgemmNR). It lives
// in that namespace and is compiled with the ISA's flags (the compiler may
// vectorise its stores), so dispatch calls it only on CPUs that support the
// ISA.

namespace fastconv {
namespace FASTCONV_ISA_NS {

void fill_kernel_table(KernelTable* t) {
  t->sgemm_mr = kSgemmMR;
  t->sgemm_nr = kSgemmNR;
#define FASTCONV_KERNEL(name, tiled, ret, args) t->name = &name;
#include "kernels/registry.inc"
#undef FASTCONV_KERNEL
}

}  // namespace FASTCONV_ISA_NS
}  // namespace fastconv
