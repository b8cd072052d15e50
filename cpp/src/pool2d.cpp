// Pooling op drivers: one (n, c) plane per task, planes in parallel.
#include "fastconv/pool2d.h"

#include <atomic>
#include <string>

#include "fastconv/dispatch.h"
#include "fastconv/threading.h"

namespace fastconv {

Status max_pool2d_forward(float* y, int64_t* indices, const float* x, const Pool2dParams& p) {
  const KernelTable& kt = kernels();
  const int64_t planes = p.N * p.C, HW = p.H * p.W, PQ = p.P * p.Q;
#pragma omp parallel for schedule(dynamic, 4) num_threads(get_num_threads())
  for (int64_t i = 0; i < planes; ++i)
    kt.max_pool2d_forward(y + i * PQ, indices ? indices + i * PQ : nullptr, x + i * HW, p);
  return Status::Ok();
}

Status max_pool2d_backward(float* dx, const float* dy, const int64_t* indices,
                           const Pool2dParams& p) {
  const int64_t planes = p.N * p.C, HW = p.H * p.W, PQ = p.P * p.Q, total = planes * PQ;
  // Check every index before writing anything.
  std::atomic<int64_t> bad{-1};
#pragma omp parallel for schedule(static) num_threads(get_num_threads())
  for (int64_t i = 0; i < total; ++i) {
    if (indices[i] < 0 || indices[i] >= HW) {
      // Keep the smallest bad position, so the message does not depend on threads.
      int64_t cur = bad.load();
      while ((cur < 0 || i < cur) && !bad.compare_exchange_weak(cur, i)) {
      }
    }
  }
  if (bad.load() >= 0) {
    const int64_t i = bad.load();
    return Status::InvalidArgument(
        "max_pool2d_backward: indices must lie in [0, H*W) = [0, " + std::to_string(HW) +
        ") for input planes of " + std::to_string(p.H) + "x" + std::to_string(p.W) +
        "; found " + std::to_string(indices[i]) + " at flat position " + std::to_string(i));
  }
  const KernelTable& kt = kernels();
#pragma omp parallel for schedule(dynamic, 4) num_threads(get_num_threads())
  for (int64_t i = 0; i < planes; ++i)
    kt.max_pool2d_backward(dx + i * HW, dy + i * PQ, indices + i * PQ, p);
  return Status::Ok();
}

Status avg_pool2d_forward(float* y, const float* x, const Pool2dParams& p) {
  const KernelTable& kt = kernels();
  const int64_t planes = p.N * p.C, HW = p.H * p.W, PQ = p.P * p.Q;
#pragma omp parallel for schedule(dynamic, 4) num_threads(get_num_threads())
  for (int64_t i = 0; i < planes; ++i) kt.avg_pool2d_forward(y + i * PQ, x + i * HW, p);
  return Status::Ok();
}

Status avg_pool2d_backward(float* dx, const float* dy, const Pool2dParams& p) {
  const KernelTable& kt = kernels();
  const int64_t planes = p.N * p.C, HW = p.H * p.W, PQ = p.P * p.Q;
#pragma omp parallel for schedule(dynamic, 4) num_threads(get_num_threads())
  for (int64_t i = 0; i < planes; ++i) kt.avg_pool2d_backward(dx + i * HW, dy + i * PQ, p);
  return Status::Ok();
}

}  // namespace fastconv
