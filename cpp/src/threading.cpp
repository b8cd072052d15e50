// Thread count and per-thread workspaces of the op drivers.
#include "fastconv/threading.h"

#include <atomic>
#include <cstdlib>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastconv {
namespace {

std::atomic<int> g_num_threads{0};  // 0 = not yet read from OpenMP

struct ThreadWorkspaces {
  float* ptr[kNumSlots] = {};
  int64_t cap[kNumSlots] = {};
  ~ThreadWorkspaces() {
    for (int i = 0; i < kNumSlots; ++i) std::free(ptr[i]);
  }
};
thread_local ThreadWorkspaces t_ws;

}  // namespace

void set_num_threads(int n) { g_num_threads.store(n < 1 ? 1 : n); }

int get_num_threads() {
  int n = g_num_threads.load();
  if (n == 0) {
#ifdef _OPENMP
    n = omp_get_max_threads();  // honours OMP_NUM_THREADS
#else
    n = 1;
#endif
    g_num_threads.store(n);
  }
  return n;
}

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

const char* openmp_runtime() {
#if defined(_OPENMP) && defined(__GNUC__) && !defined(__clang__)
  return "libgomp";
#elif defined(_OPENMP)
  return "openmp";
#else
  return "none";
#endif
}

float* thread_workspace(WorkspaceSlot slot, int64_t n_floats) {
  if (n_floats <= t_ws.cap[slot]) return t_ws.ptr[slot];
  // Round up to whole 4 KiB pages so that small growth does not reallocate.
  const int64_t n = (n_floats + 1023) / 1024 * 1024;
  if (n > (int64_t{1} << 60) / static_cast<int64_t>(sizeof(float))) return nullptr;
  void* p = nullptr;
  if (posix_memalign(&p, 64, static_cast<size_t>(n) * sizeof(float)) != 0) return nullptr;
  std::free(t_ws.ptr[slot]);
  t_ws.ptr[slot] = static_cast<float*>(p);
  t_ws.cap[slot] = n;
  return t_ws.ptr[slot];
}

}  // namespace fastconv
