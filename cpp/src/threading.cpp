// Thread count, parallel-region setup and per-thread workspaces of the op drivers.
#include "fastconv/threading.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastconv {
namespace {

// set_num_threads: the value, and a generation that a thread compares with
// the last one it applied to its own OpenMP setting (0: never called; every
// thread then follows its own setting, e.g. OMP_NUM_THREADS).
std::atomic<int> g_num_threads{1};
std::atomic<uint64_t> g_threads_generation{0};
thread_local uint64_t t_threads_generation = 0;

// A team of more than one thread ran in this process: a child forked from
// now on must not open parallel regions (the pool's threads are not there).
std::atomic<bool> g_team_started{false};
std::atomic<bool> g_forked_child{false};
std::atomic<InterruptPoll> g_interrupt_poll{nullptr};
std::atomic<int64_t> g_poll_interval_ns{int64_t{kInterruptPollMs} * 1000000};

void mark_forked_child() {
  if (g_team_started.load()) g_forked_child.store(true);
}

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

// Contention (see Team): regions run on one thread until g_solo_until_ns.
constexpr int64_t kBackoffMinNs = 50000000, kBackoffMaxNs = 1000000000;
std::atomic<bool> g_adaptive{[] {
  const char* env = std::getenv("FASTCONV_ADAPTIVE_THREADS");
  return !(env && env[0] == '0' && env[1] == '\0');
}()};
std::atomic<int64_t> g_solo_until_ns{0};
std::atomic<int64_t> g_backoff_ns{kBackoffMinNs};
std::atomic<int64_t> g_episodes{0};
std::atomic<uint32_t> g_recent_stalls{0};  // bit i: the i-th last team region stalled

// This thread's time spent runnable but not running (the second field of
// /proc/thread-self/schedstat, kept open while the thread lives), or -1
// where the kernel has none.
struct SchedstatFile {
  int fd = -1;  // -1: not opened yet; -2: unavailable
  ~SchedstatFile() {
    if (fd >= 0) close(fd);
  }
};
int64_t run_delay_ns() {
  thread_local SchedstatFile file;
  if (file.fd == -1) {
    file.fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (file.fd < 0) file.fd = -2;
  }
  if (file.fd < 0) return -1;
  char buf[96];
  const ssize_t n = pread(file.fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char* p = buf;
  std::strtoll(p, &p, 10);  // CPU time
  return std::strtoll(p, nullptr, 10);
}

// Outside every parallel region (active or not) of this thread: only there
// does omp_set_num_threads change the setting that later regions read.
bool at_top_level() {
#ifdef _OPENMP
  return omp_get_level() == 0;
#else
  return true;
#endif
}

// Nesting: level 0 for ops called from Python, 1 inside another op's poll.
constexpr int kLevels = 2;
thread_local int t_level = 0;

// Bytes held by every thread's workspaces, and the peak since the last reset.
std::atomic<int64_t> g_ws_bytes{0};
std::atomic<int64_t> g_ws_peak{0};

void count_workspace_bytes(int64_t delta) {
  const int64_t now = g_ws_bytes.fetch_add(delta) + delta;
  int64_t peak = g_ws_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_ws_peak.compare_exchange_weak(peak, now)) {
  }
}

struct ThreadWorkspaces {
  float* ptr[kNumSlots] = {};
  int64_t cap[kNumSlots] = {};
  void release() {
    for (int i = 0; i < kNumSlots; ++i) {
      if (ptr[i] != nullptr) count_workspace_bytes(-cap[i] * static_cast<int64_t>(sizeof(float)));
      std::free(ptr[i]);
      ptr[i] = nullptr;
      cap[i] = 0;
    }
  }
  ~ThreadWorkspaces() { release(); }
};
thread_local ThreadWorkspaces t_ws[kLevels];

}  // namespace

void set_num_threads(int n) {
  n = n < 1 ? 1 : n;
  g_num_threads.store(n);
  const uint64_t gen = g_threads_generation.fetch_add(1) + 1;
#ifdef _OPENMP
  // Inside a region (a signal handler run by an op's poll) the setting is
  // the region's own and would be lost: this thread applies it at its next op.
  if (at_top_level()) {
    omp_set_num_threads(n);
    t_threads_generation = gen;
  }
#else
  (void)gen;
#endif
}

bool in_forked_child() { return g_forked_child.load(); }

int team_threads() {
  const int n = get_num_threads();
  if (n > 1 && now_ns() < g_solo_until_ns.load(std::memory_order_relaxed)) return 1;
  return n;
}

ContentionState contention_state() {
  const int64_t left = g_solo_until_ns.load() - now_ns();
  return {left > 0 ? left : 0, g_backoff_ns.load(), g_episodes.load()};
}

void set_adaptive_threads(bool on) {
  g_adaptive.store(on);
  if (!on) g_solo_until_ns.store(0);
}

int get_num_threads() {
  if (!openmp_enabled() || g_forked_child.load()) return 1;
#ifdef _OPENMP
  const uint64_t gen = g_threads_generation.load();
  if (gen != t_threads_generation) {
    const int n = g_num_threads.load();
    if (!at_top_level()) return n;
    omp_set_num_threads(n);
    t_threads_generation = gen;
  }
  return omp_get_max_threads();
#else
  return 1;
#endif
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

Team::Team(int threads) : threads_(threads < 1 ? 1 : threads), start_ns_(0) {
  std::fegetenv(&caller_env_);
  if (threads_ > 1) {
    if (!g_team_started.load(std::memory_order_relaxed)) g_team_started.store(true);
    start_ns_ = now_ns();
  }
}

Team::~Team() {
  if (threads_ <= 1 || !g_adaptive.load(std::memory_order_relaxed)) return;
  // A region stalled when a member waited for a core more than kContendedNs
  // and more than 1/8 of the region (a long region on a quiet machine sees a
  // millisecond of kernel threads and hypervisor now and then). Contended
  // when two of the last three team regions stalled: one stall alone happens
  // on a quiet machine too.
  const int64_t wait = worst_wait_ns_.load();
  const bool stalled = wait > kContendedNs && wait > (now_ns() - start_ns_) / 8;
  uint32_t recent = g_recent_stalls.load(std::memory_order_relaxed);
  recent = ((recent << 1) | (stalled ? 1u : 0u)) & 7u;
  g_recent_stalls.store(recent, std::memory_order_relaxed);
  if (stalled && (recent & (recent - 1)) != 0) {  // at least two bits set
    // Contended: one thread for the backoff period; a longer one next time
    // if the condition is still there when it ends.
    const int64_t now = now_ns();
    const int64_t backoff = g_backoff_ns.load();
    g_solo_until_ns.store(now + backoff);
    g_backoff_ns.store(std::min(2 * backoff, kBackoffMaxNs));
    g_episodes.fetch_add(1);
  } else if (g_backoff_ns.load(std::memory_order_relaxed) != kBackoffMinNs) {
    g_backoff_ns.store(kBackoffMinNs);
  }
}

// A thread's run-queue delay at the end of its last team region, and when
// that was: a worker that waited for a core before it could even join this
// region (while another task ran there) shows it only in the delay
// accumulated since then. (Its wall-clock start latency is no measure: on a
// virtual machine, waking an idle virtual CPU takes milliseconds without any
// contention, and that time is not run-queue delay.)
thread_local int64_t t_last_delay = -1;
thread_local int64_t t_last_end_ns = 0;
constexpr int64_t kDelayFreshNs = 100000000;  // older delays say nothing about now

TeamMember::TeamMember(Team& team) : team_(team) {
#ifdef _OPENMP
  if (team.threads_ <= 1) return;
  if (omp_get_thread_num() != 0) {
    std::fegetenv(&saved_env_);
    std::fesetenv(&team.caller_env_);
    switched_ = true;
  }
  if (g_adaptive.load(std::memory_order_relaxed)) {
    run_delay0_ = t_last_delay >= 0 && team.start_ns_ - t_last_end_ns < kDelayFreshNs
                      ? t_last_delay
                      : run_delay_ns();
  }
#endif
}

TeamMember::~TeamMember() {
  if (switched_) std::fesetenv(&saved_env_);
  if (run_delay0_ < 0) return;
  const int64_t d = run_delay_ns();
  t_last_delay = d;
  t_last_end_ns = now_ns();
  if (d < run_delay0_) return;
  const int64_t wait = d - run_delay0_;
  int64_t cur = team_.worst_wait_ns_.load(std::memory_order_relaxed);
  while (wait > cur && !team_.worst_wait_ns_.compare_exchange_weak(cur, wait)) {
  }
}

void set_interrupt_poll(InterruptPoll fn) { g_interrupt_poll.store(fn); }

void set_interrupt_poll_interval_ms(int ms) {
  g_poll_interval_ns.store(int64_t{ms < 1 ? 1 : ms} * 1000000);
}

Interruptible::Interruptible()
    : poll_(t_level == 0 ? g_interrupt_poll.load() : nullptr),
      owner_(this_thread_id()),
      next_ns_(now_ns() + g_poll_interval_ns.load(std::memory_order_relaxed)) {}

bool Interruptible::stop() {
  if (stopped_.load(std::memory_order_relaxed)) return true;
  if (poll_ == nullptr || this_thread_id() != owner_) return false;
  const int64_t t = now_ns();
  if (t < next_ns_) return false;
  // The poll may run ops (signal handlers): they get the next level's workspaces.
  ++t_level;
  const bool stop_now = poll_();
  t_ws[t_level].release();
  --t_level;
  next_ns_ = now_ns() + g_poll_interval_ns.load(std::memory_order_relaxed);
  if (stop_now) stopped_.store(true);
  return stopped_.load(std::memory_order_relaxed);
}

float* thread_workspace(WorkspaceSlot slot, int64_t n_floats) {
  ThreadWorkspaces& ws = t_ws[t_level];
  if (n_floats <= ws.cap[slot]) return ws.ptr[slot];
  // Round up to whole 4 KiB pages so that small growth does not reallocate.
  const int64_t n = (n_floats + 1023) / 1024 * 1024;
  if (n > (int64_t{1} << 60) / static_cast<int64_t>(sizeof(float))) return nullptr;
  void* p = nullptr;
  if (posix_memalign(&p, 64, static_cast<size_t>(n) * sizeof(float)) != 0) return nullptr;
  std::free(ws.ptr[slot]);
  count_workspace_bytes((n - ws.cap[slot]) * static_cast<int64_t>(sizeof(float)));
  ws.ptr[slot] = static_cast<float*>(p);
  ws.cap[slot] = n;
  return ws.ptr[slot];
}

void release_workspaces() {
  for (ThreadWorkspaces& ws : t_ws) ws.release();
  const int threads = get_num_threads();
  if (threads <= 1) return;
  Team team(threads);
#pragma omp parallel num_threads(threads)
  {
    const TeamMember member(team);
    for (ThreadWorkspaces& ws : t_ws) ws.release();
  }
}

WorkspaceBytes workspace_bytes() { return {g_ws_bytes.load(), g_ws_peak.load()}; }

void reset_workspace_peak() { g_ws_peak.store(g_ws_bytes.load()); }

}  // namespace fastconv
