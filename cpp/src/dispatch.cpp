// Run-time ISA dispatch: CPUID once, FASTCONV_ISA override, the active table.
#include "fastconv/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include "fastconv/enum_names.h"
#include "kernels/kernel_table.h"

namespace fastconv {
namespace {

KernelTable g_tables[kNumIsas];
std::once_flag g_tables_once;
std::atomic<int> g_active{-1};  // an Isa, or -1 before initialisation

// Fills the tables of the ISAs this CPU runs; the others stay empty and
// are never activated (isa_force checks support first).
void fill_tables() {
  scalar::fill_kernel_table(&g_tables[0]);
#ifdef FASTCONV_HAVE_AVX2
  if (isa_cpu_supports(Isa::kAvx2)) avx2::fill_kernel_table(&g_tables[1]);
#endif
#ifdef FASTCONV_HAVE_AVX512
  if (isa_cpu_supports(Isa::kAvx512)) avx512::fill_kernel_table(&g_tables[2]);
#endif
}

void activate(Isa isa) {
  std::call_once(g_tables_once, fill_tables);
  g_active.store(static_cast<int>(isa), std::memory_order_release);
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

bool isa_from_name(std::string_view s, Isa* isa) { return enum_from_name(s, kIsas, isa_name, isa); }

bool isa_compiled(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return true;
#ifdef FASTCONV_HAVE_AVX2
    case Isa::kAvx2: return true;
#endif
#ifdef FASTCONV_HAVE_AVX512
    case Isa::kAvx512: return true;
#endif
    default: return false;
  }
}

bool isa_cpu_supports(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  // libgcc's checks include the OS's XSAVE support for the wider registers.
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }
  return false;
#else
  return isa == Isa::kScalar;
#endif
}

Isa isa_detected() {
  for (int i = kNumIsas - 1; i > 0; --i) {
    const Isa isa = static_cast<Isa>(i);
    if (isa_compiled(isa) && isa_cpu_supports(isa)) return isa;
  }
  return Isa::kScalar;
}

Isa isa_active() {
  if (g_active.load(std::memory_order_acquire) < 0) activate(isa_detected());
  return static_cast<Isa>(g_active.load(std::memory_order_acquire));
}

Status isa_force(Isa isa) {
  if (!isa_compiled(isa)) {
    return Status::Unsupported(std::string("ISA '") + isa_name(isa) +
                               "' is not compiled into this build of fastconv");
  }
  if (!isa_cpu_supports(isa)) {
    return Status::Unsupported(std::string("ISA '") + isa_name(isa) +
                               "' is not supported by this CPU (best available: '" +
                               isa_name(isa_detected()) + "')");
  }
  activate(isa);
  return Status::Ok();
}

Status isa_init_from_env() {
  const char* env = std::getenv("FASTCONV_ISA");
  if (env == nullptr || env[0] == '\0') {
    activate(isa_detected());
    return Status::Ok();
  }
  Isa isa;
  if (!isa_from_name(env, &isa)) {
    return Status::InvalidArgument(std::string("FASTCONV_ISA='") + env + "' is not one of " +
                                   enum_name_list(kIsas, isa_name));
  }
  Status st = isa_force(isa);
  if (!st.ok()) return Status::Unsupported("FASTCONV_ISA: " + st.message());
  return st;
}

const KernelTable& kernels() { return g_tables[static_cast<int>(isa_active())]; }

}  // namespace fastconv
