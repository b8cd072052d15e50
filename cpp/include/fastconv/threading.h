// Threads and workspaces of the op drivers.
//
// Only drivers (cpp/src/) open parallel regions; kernels never do. Every
// region is opened through a Team (the thread count for this region, and the
// caller's floating-point environment), and every thread of the region starts
// with a TeamMember, so the region's workers compute in the caller's rounding
// and denormal mode.
#pragma once

#include <atomic>
#include <cfenv>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "fastconv/status.h"

namespace fastconv {

// The thread count is OpenMP's nthreads setting of the calling thread, the
// one that omp_set_num_threads() and threadpoolctl change; set_num_threads(n)
// sets it for every thread (the calling thread at once, any other thread at
// its next op), so one Python thread's call reaches the others.
void set_num_threads(int n);  // n >= 1
// The threads an op started now on this thread may use: the setting; 1 in a
// build without OpenMP, or in a child process forked after this process ran a
// parallel region (GNU libgomp's pool does not survive fork: a parallel region
// in the child would wait forever for threads that do not exist).
int get_num_threads();
bool in_forked_child();
// The threads a parallel region opened now may use: get_num_threads(), or 1
// while the machine is contended (see Team).
int team_threads();
bool openmp_enabled();         // built with OpenMP
const char* openmp_runtime();  // "libgomp", "openmp" or "none"

// What one parallel region needs from the thread that opens it: how many
// threads, and the caller's floating-point environment (rounding mode, and
// MXCSR's flush-to-zero and denormals-are-zero on x86). OpenMP does not pass
// that environment to its workers, which keep whatever mode they had: a
// caller that changed its mode after the workers started would get results
// that depend on which thread computed what.
//
// A Team also watches for contention. On a machine with as many cores as
// threads, a thread of the team that another process (or another library's
// spinning pool) keeps off its core stalls the whole region at its barriers,
// for whole scheduler slices. Each member reports how long it waited for a
// core, runnable but not running (the kernel's run-queue delay of the thread,
// /proc/thread-self/schedstat, since it left its last region); when that
// exceeds kContendedNs and 1/8 of the region in two of the last three
// regions, regions run on one
// thread for a while (50 ms, doubling up to 1 s while the condition lasts).
// That is always correct: results never depend on the thread count.
constexpr int64_t kContendedNs = 500000;
class Team {
 public:
  explicit Team(int threads);  // at most team_threads()
  ~Team();                     // after the region: judges contention
  Team(const Team&) = delete;
  Team& operator=(const Team&) = delete;
  int threads() const { return threads_; }

 private:
  friend class TeamMember;
  int threads_;
  std::fenv_t caller_env_;
  int64_t start_ns_;
  std::atomic<int64_t> worst_wait_ns_{0};
};

// The first statement of every parallel region: on a worker thread, switches
// to the caller's floating-point environment for the region and restores the
// worker's own at the end (the pool's threads are shared with other users of
// the OpenMP runtime). Nothing to do on the calling thread.
class TeamMember {
 public:
  explicit TeamMember(Team& team);
  ~TeamMember();
  TeamMember(const TeamMember&) = delete;
  TeamMember& operator=(const TeamMember&) = delete;

 private:
  Team& team_;
  bool switched_ = false;
  std::fenv_t saved_env_;
  int64_t run_delay0_ = -1;  // the thread's run-queue delay when it last left a region
};

// For tests and benchmarks: the contention state.
struct ContentionState {
  int64_t solo_for_ns;  // regions run on one thread for this much longer
  int64_t backoff_ns;   // the next solo period
  int64_t episodes;     // contended regions seen so far
};
ContentionState contention_state();
void set_adaptive_threads(bool on);  // on by default (FASTCONV_ADAPTIVE_THREADS=0: off)

// A workspace per OS thread and slot, 64-byte aligned, kept across calls
// (freshly mapped memory costs ~1.5 us per 4 KiB page on our machines) and
// grown on demand; never shrinks. Returns null if the allocation fails.
// Slots let one thread hold several buffers at once (e.g. a column buffer
// while sgemm packs its panels).
//
// An op that runs inside another op's interrupt poll (a Python signal
// handler that calls fastconv) gets its own set of workspaces: the poll
// raises this thread's nesting level, and each level has its own slots
// (freed when the poll returns), so the inner op never touches the buffers
// the outer op is still using.
enum WorkspaceSlot {
  kSlotColumns = 0,  // one image's im2col buffer
  kSlotGemmA,        // a packed A block (per thread)
  kSlotGemmB,        // a packed B panel (shared by the threads of one gemm)
  kSlotPartials,     // weight-gradient partial sums
  kSlotWeights,      // weights packed once per call
  kSlotTile,         // a block of a GEMM's output (the implicit-GEMM tasks)
  kSlotRows,         // row pointers of an indirect GEMM's A (the implicit-GEMM tasks)
  kNumSlots
};
float* thread_workspace(WorkspaceSlot slot, int64_t n_floats);

// Frees the workspaces of the calling thread and of the OpenMP worker
// threads (a parallel region in which each frees its own); the next op
// allocates again. Other threads' workspaces are freed when they exit.
void release_workspaces();
// Bytes held in workspaces by all threads now, and the most held at once
// since the last reset_workspace_peak() (what an op needs beyond its inputs
// and outputs).
struct WorkspaceBytes {
  int64_t current, peak;
};
WorkspaceBytes workspace_bytes();
void reset_workspace_peak();

// Interrupts (Ctrl-C). The embedding installs a poll function (Python's
// signal check); it is only ever called on the thread that started the op,
// at most every kInterruptPollMs (tests may shorten that with
// set_interrupt_poll_interval_ms), between tasks of parallel_for. The poll may
// run code that calls ops again (see thread_workspace); an op started inside
// a poll does not poll itself, so such nesting is one level deep.
using InterruptPoll = bool (*)();
void set_interrupt_poll(InterruptPoll fn);
constexpr int kInterruptPollMs = 20;
void set_interrupt_poll_interval_ms(int ms);  // ms >= 1; kInterruptPollMs by default

class Interruptible {
 public:
  Interruptible();
  // True once the op must stop; polls when called on the starting thread.
  bool stop();
  bool interrupted() const { return stopped_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> stopped_{false};
  InterruptPoll poll_;
  uint64_t owner_;   // thread that started the op
  int64_t next_ns_;  // next poll time (touched by the owner only)
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
  Team team(n > 1 ? team_threads() : 1);
#pragma omp parallel num_threads(team.threads()) if (team.threads() > 1)
  {
    const TeamMember member(team);
#pragma omp for schedule(dynamic, 1)
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
