// fma_peak_probe (see kernels/kernel_table.h): CHAINS independent chains of
// the ISA's widest multiply-add on vectors of type V, nothing else, so the
// loop runs at the FP32 peak of the multiply-add units (enough chains cover
// the instruction's latency on every port). Each ISA file instantiates it
// once, with its own intrinsics:
//
//   FASTCONV_FMA_PROBE(V, CHAINS, set1, madd, add, storeu)
//
// madd(a, b, c) = a * b + c. Expands to fastconv::FASTCONV_ISA_NS::fma_peak_probe.
#define FASTCONV_FMA_PROBE(V, CHAINS, set1, madd, add, storeu)                     \
  namespace fastconv {                                                             \
  namespace FASTCONV_ISA_NS {                                                      \
  double fma_peak_probe(int64_t iters, float* sink) {                              \
    constexpr int kLanes = static_cast<int>(sizeof(V) / sizeof(float));            \
    V acc[CHAINS];                                                                 \
    for (int i = 0; i < CHAINS; ++i) acc[i] = set1(1e-3f * static_cast<float>(i)); \
    const V a = set1(0.999999f), b = set1(1e-7f);                                  \
    for (int64_t it = 0; it < iters; ++it)                                         \
      for (int i = 0; i < CHAINS; ++i) acc[i] = madd(acc[i], a, b);                \
    V s = acc[0];                                                                  \
    for (int i = 1; i < CHAINS; ++i) s = add(s, acc[i]);                           \
    float out[kLanes];                                                             \
    storeu(out, s);                                                                \
    float t = 0.0f;                                                                \
    for (int i = 0; i < kLanes; ++i) t += out[i];                                  \
    *sink = t;                                                                     \
    return static_cast<double>(iters) * CHAINS * kLanes * 2;                       \
  }                                                                                \
  }                                                                                \
  }
