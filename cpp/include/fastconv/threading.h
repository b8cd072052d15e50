// Threads and workspaces of the op drivers.
//
// Only drivers (cpp/src/) open parallel regions; kernels never do. The thread
// count is a process-wide setting (OpenMP's own is per calling thread, which
// would let one Python thread's setting leak into or miss another's).
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastconv {

void set_num_threads(int n);  // n >= 1
int get_num_threads();
bool openmp_enabled();          // built with OpenMP
const char* openmp_runtime();   // "libgomp (OpenMP 4.5)" or "none"

// A workspace per OS thread and slot, 64-byte aligned, kept across calls
// (freshly mapped memory costs ~1.5 us per 4 KiB page on our machines) and
// grown on demand; never shrinks. Returns null if the allocation fails.
// Slots let one thread hold several buffers at once (e.g. a column buffer
// while sgemm packs its panels).
enum WorkspaceSlot { kSlotColumns = 0, kSlotGemmA, kSlotGemmB, kSlotPartials, kNumSlots };
float* thread_workspace(WorkspaceSlot slot, int64_t n_floats);

}  // namespace fastconv
