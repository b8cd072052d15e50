// Threads and workspaces of the op drivers.
//
// Only drivers (cpp/src/) open parallel regions; kernels never do. The thread
// count is a process-wide setting (OpenMP's own is per calling thread, which
// would let one Python thread's setting leak into or miss another's).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "fastconv/status.h"

namespace fastconv {

void set_num_threads(int n);  // n >= 1
// The threads an op uses now: the setting; 1 in a build without OpenMP, or
// in a child process forked after OpenMP ran (GNU libgomp's pool does not survive fork: a parallel
// region in the child would wait forever for threads that do not exist).
int get_num_threads();
bool in_forked_child();
bool openmp_enabled();          // built with OpenMP
const char* openmp_runtime();   // "libgomp (OpenMP 4.5)" or "none"

// A workspace per OS thread and slot, 64-byte aligned, kept across calls
// (freshly mapped memory costs ~1.5 us per 4 KiB page on our machines) and
// grown on demand; never shrinks. Returns null if the allocation fails.
// Slots let one thread hold several buffers at once (e.g. a column buffer
// while sgemm packs its panels).
enum WorkspaceSlot {
  kSlotColumns = 0,  // one image's im2col buffer
  kSlotGemmA,        // a packed A block (per thread)
  kSlotGemmB,        // a packed B panel (shared by the threads of one gemm)
  kSlotPartials,     // weight-gradient partial sums
  kSlotWeights,      // weights packed once per call
  kNumSlots
};
float* thread_workspace(WorkspaceSlot slot, int64_t n_floats);

// Interrupts (Ctrl-C). The embedding installs a poll function (Python's
// signal check); it is only ever called on the thread that started the op,
// at most every kInterruptPollMs, between tasks of parallel_for.
using InterruptPoll = bool (*)();
void set_interrupt_poll(InterruptPoll fn);
constexpr int kInterruptPollMs = 20;

class Interruptible {
 public:
  Interruptible();
  // True once the op must stop; polls when called on the starting thread.
  bool stop();
  bool interrupted() const { return stopped_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> stopped_{false};
  InterruptPoll poll_;
  uint64_t owner_;    // thread that started the op
  int64_t next_ns_;   // next poll time (touched by the owner only)
};

// Runs body(t) for every task t in [0, n) on get_num_threads() threads, one
// task per dynamic scheduling unit, so each task must write outputs no other
// task writes. body returns a Status, or a bool (false: it could not
// allocate its workspace). After the first failure, or an interrupt between
// tasks, the remaining tasks are skipped and that status is returned (the
// caller discards its outputs); a failure inside a task, such as an
// interrupt seen by a nested GEMM, keeps its code.
template <class Body>
Status parallel_for(int64_t n, Body&& body) {
  Interruptible intr;
  std::atomic<int> failed{0};  // a StatusCode
  [[maybe_unused]] const int threads = get_num_threads();  // unused without OpenMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1 && n > 1)
  for (int64_t t = 0; t < n; ++t) {
    if (intr.stop() || failed.load(std::memory_order_relaxed) != 0) continue;
    StatusCode code;
    if constexpr (std::is_same_v<decltype(body(t)), bool>) {
      code = body(t) ? StatusCode::kOk : StatusCode::kOutOfMemory;
    } else {
      code = body(t).code();
    }
    if (code != StatusCode::kOk) {
      int expected = 0;
      failed.compare_exchange_strong(expected, static_cast<int>(code));
    }
  }
  switch (static_cast<StatusCode>(failed.load())) {
    case StatusCode::kOk: break;
    case StatusCode::kInterrupted: return Status::Interrupted();
    case StatusCode::kOutOfMemory: return Status::OutOfMemory("cannot allocate a workspace");
    default: return Status::InvalidArgument("a task failed");
  }
  if (intr.interrupted()) return Status::Interrupted();
  return Status::Ok();
}

}  // namespace fastconv
