// sgemm_ukernel and sgemm_ukernel_indirect of an ISA whose microkernel
// reads A plainly (scalar, avx2; avx512's also prefetches A): both run the
// ISA's sgemm_ukernel_m<A>(c, a, b, t), defined before this file is included,
// with A telling where depth step k of the A operand lies: a packed panel
// (kSgemmMR values per step), or rows given one by one (only t.m of them are
// read).

namespace fastconv {
namespace FASTCONV_ISA_NS {
namespace {  // internal linkage: no weak symbol in an ISA object (test_gemm.py)

struct PackedA {
  const float* a;
  const float* at(int64_t k) const { return a + kSgemmMR * k; }
};
struct RowsA {
  const float* const* rows;
  const float* at(int64_t k) const { return rows[k]; }
};

}  // namespace

void sgemm_ukernel(float* c, const float* a, const float* b, const GemmTile& t) {
  sgemm_ukernel_m(c, PackedA{a}, b, t);
}

void sgemm_ukernel_indirect(float* c, const float* const* a, const float* b, const GemmTile& t) {
  sgemm_ukernel_m(c, RowsA{a}, b, t);
}

}  // namespace FASTCONV_ISA_NS
}  // namespace fastconv
