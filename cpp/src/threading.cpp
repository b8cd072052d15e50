// Thread count and per-thread workspaces of the op drivers.
#include "fastconv/threading.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdlib>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastconv {
namespace {

std::atomic<int> g_num_threads{0};  // 0 = not yet read from OpenMP
std::atomic<bool> g_forked_child{false};
std::atomic<InterruptPoll> g_interrupt_poll{nullptr};

void mark_forked_child() { g_forked_child.store(true); }

// Registered once, before any parallel region can run.
const bool g_atfork_registered = [] {
  pthread_atfork(nullptr, nullptr, mark_forked_child);
  return true;
}();

uint64_t this_thread_id() { return static_cast<uint64_t>(pthread_self()); }

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

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

bool in_forked_child() { return g_forked_child.load(); }

int get_num_threads() {
  if (!openmp_enabled() || g_forked_child.load()) return 1;
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

void set_interrupt_poll(InterruptPoll fn) { g_interrupt_poll.store(fn); }

Interruptible::Interruptible()
    : poll_(g_interrupt_poll.load()),
      owner_(this_thread_id()),
      next_ns_(now_ns() + int64_t{kInterruptPollMs} * 1000000) {}

bool Interruptible::stop() {
  if (stopped_.load(std::memory_order_relaxed)) return true;
  if (poll_ == nullptr || this_thread_id() != owner_) return false;
  const int64_t t = now_ns();
  if (t < next_ns_) return false;
  next_ns_ = t + int64_t{kInterruptPollMs} * 1000000;
  if (poll_()) stopped_.store(true);
  return stopped_.load(std::memory_order_relaxed);
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
