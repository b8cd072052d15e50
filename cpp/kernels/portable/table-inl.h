// Fills the kernel table of this ISA from the registry: one pointer per
// entry, to <name> in namespace fastconv::FASTCONV_ISA_NS.

#define FASTCONV_CAT2(a, b) a##b
#define FASTCONV_CAT(a, b) FASTCONV_CAT2(a, b)

namespace fastconv {

void FASTCONV_CAT(fill_kernel_table__, FASTCONV_ISA_NS)(KernelTable* t) {
#define FASTCONV_KERNEL(name, ret, args) t->name = &FASTCONV_ISA_NS::name;
#include "kernels/registry.inc"
#undef FASTCONV_KERNEL
}

}  // namespace fastconv
