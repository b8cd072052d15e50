// cpp/kernels/generic/ holds plain C++ kernel bodies that every ISA
// translation unit (scalar, avx2, avx512) compiles in its own namespace with
// its own flags, so the compiler vectorises them for that ISA; an ISA with a
// hand-written version of a kernel defines FASTCONV_NATIVE_<KERNEL> first.
//
// Helpers shared by the generic kernel bodies. Included once by each ISA
// translation unit, inside that ISA's namespace: everything here has internal
// linkage, and nothing from std:: is instantiated, so no function compiled
// with AVX flags can be merged by the linker into code the baseline runs.
//
// Expects FASTCONV_ISA_NS (scalar, avx2, avx512) to be defined.

namespace fastconv {
namespace FASTCONV_ISA_NS {

static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// For positions i*stride + off (stride >= 1) and a dimension of size n:
// the first i >= 0 with i*stride + off >= 0 ...
static inline int64_t first_in_range(int64_t off, int64_t stride) {
  return off >= 0 ? 0 : (-off + stride - 1) / stride;
}
// ... and one past the last i with i*stride + off < n (0 if there is none).
static inline int64_t end_in_range(int64_t off, int64_t stride, int64_t n) {
  return n - off <= 0 ? 0 : (n - off - 1) / stride + 1;
}

static inline bool is_finite(float v) { return v - v == 0.0f; }  // false for inf and NaN

// Sum of a (n) with 16 partial sums combined in a fixed tree: vectorisable
// without reassociation flags, and the same rounding on every ISA but FMA.
static inline float sum_lanes16(const float* a, int64_t n) {
  float lanes[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) lanes[j] += a[i + j];
  for (int j = 0; i + j < n; ++j) lanes[j] += a[i + j];
  for (int w = 8; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) lanes[j] += lanes[j + w];
  return lanes[0];
}

}  // namespace FASTCONV_ISA_NS
}  // namespace fastconv
