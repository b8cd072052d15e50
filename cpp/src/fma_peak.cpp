// The FP32 peak probe of the benchmarks: the active ISA's fma_peak_probe (not
// a kernel of any op, so not in the kernel table) run on every thread at once.
#include "fastconv/fma_peak.h"

#include <atomic>
#include <chrono>
#include <cstdint>

#include "fastconv/dispatch.h"
#include "fastconv/threading.h"
#include "kernels/kernel_table.h"

namespace fastconv {
namespace {

using FmaProbe = double (*)(int64_t iters, float* sink);

// The probe of the active ISA, compiled with its flags.
FmaProbe active_probe() {
  switch (isa_active()) {
#ifdef FASTCONV_HAVE_AVX512
    case Isa::kAvx512: return &avx512::fma_peak_probe;
#endif
#ifdef FASTCONV_HAVE_AVX2
    case Isa::kAvx2: return &avx2::fma_peak_probe;
#endif
    default: return &scalar::fma_peak_probe;
  }
}

}  // namespace

double fma_peak_gflops(int threads, double seconds) {
  const FmaProbe probe = active_probe();
  using Clock = std::chrono::steady_clock;
  // Calibrate on one thread: iterations for `seconds`.
  float sink = 0.0f;
  int64_t iters = 1 << 16;
  for (;;) {
    const auto t0 = Clock::now();
    probe(iters, &sink);
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    if (dt > 0.02) {
      iters = static_cast<int64_t>(static_cast<double>(iters) * seconds / dt) + 1;
      break;
    }
    iters *= 4;
  }
  std::atomic<double> flops{0.0};
  const auto t0 = Clock::now();
  Team team(threads);
#pragma omp parallel num_threads(threads)
  {
    const TeamMember member(team);
    float s = 0.0f;
    const double f = probe(iters, &s);
    double cur = flops.load();
    while (!flops.compare_exchange_weak(cur, cur + f)) {
    }
    if (s == 12345.0f) sink += s;  // keep the result alive
  }
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  return flops.load() / dt / 1e9;
}

}  // namespace fastconv
