// Run-time ISA dispatch.
//
// Each ISA's kernels are compiled in their own translation units with their
// own flags (cpp/kernels/<isa>/); nothing else is built above the x86-64
// baseline. The kernel table is chosen once, at import, from CPUID, and
// FASTCONV_ISA=scalar|avx2|avx512 forces a level (an error if the CPU or the
// build lacks it).
#pragma once

#include <string_view>

#include "fastconv/status.h"

namespace fastconv {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
// Every level, lowest first: the one list that names them.
constexpr Isa kIsas[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvx512};
constexpr int kNumIsas = static_cast<int>(sizeof(kIsas) / sizeof(kIsas[0]));

const char* isa_name(Isa isa);                     // "scalar", "avx2", "avx512"
bool isa_from_name(std::string_view s, Isa* isa);  // false if unknown (the whole string counts)
bool isa_compiled(Isa isa);                        // built into this binary
bool isa_cpu_supports(Isa isa);                    // this CPU (and OS) can run it
Isa isa_detected();                                // best level compiled and supported
Isa isa_active();                                  // the level in use

// Reads FASTCONV_ISA (if set) and chooses the kernel table. Called once at
// import; returns an error naming the problem if FASTCONV_ISA is invalid or
// unsupported.
Status isa_init_from_env();
// Switches the active level (tests use it to cover every ISA in one process).
// Not to be called while another thread is inside a kernel.
Status isa_force(Isa isa);

// The kernel table of the active level is kernels() (kernels/kernel_table.h);
// the variants' names are in fastconv/kernel_names.h.

}  // namespace fastconv
