// The FP32 peak of the machine, for benchmarks: what `fastconv bench --suite
// gemm` compares the GEMM with.
#pragma once

namespace fastconv {

// The FP32 FMA peak of the active ISA on `threads` threads at once, in
// GFLOP/s, measured for about `seconds` (the ISA's fma_peak_probe: chains of
// its widest multiply-adds and nothing else).
double fma_peak_gflops(int threads, double seconds);

}  // namespace fastconv
