// Pooling op drivers: one (n, c) plane per task, planes in parallel.
#include "fastconv/pool2d.h"

#include <atomic>
#include <string>

#include "fastconv/dispatch.h"
#include "fastconv/threading.h"

namespace fastconv {

Status max_pool2d_forward(float* y, int64_t* indices, const float* x, const Pool2dParams& p) {
  const KernelTable& kt = kernels();
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q;
  return parallel_for(p.N * p.C, [&](int64_t i) {
    kt.max_pool2d_forward(y + i * PQ, indices ? indices + i * PQ : nullptr, x + i * HW, p);
    return true;
  });
}

Status max_pool2d_backward(float* dx, const float* dy, const int64_t* indices,
                           const Pool2dParams& p) {
  const int64_t planes = p.N * p.C, HW = p.H * p.W, PQ = p.P * p.Q;
  // Check every index before writing anything; report the first bad one.
  std::atomic<int64_t> bad{-1};
  FASTCONV_RETURN_IF_ERROR(parallel_for(planes, [&](int64_t plane) {
    for (int64_t i = plane * PQ; i < (plane + 1) * PQ; ++i) {
      if (indices[i] < 0 || indices[i] >= HW) {
        int64_t cur = bad.load();
        while ((cur < 0 || i < cur) && !bad.compare_exchange_weak(cur, i)) {
        }
        break;
      }
    }
    return true;
  }));
  if (bad.load() >= 0) {
    const int64_t i = bad.load();
    return Status::InvalidArgument(
        "max_pool2d_backward: indices must lie in [0, H*W) = [0, " + std::to_string(HW) +
        ") for input planes of " + std::to_string(p.H) + "x" + std::to_string(p.W) +
        "; found " + std::to_string(indices[i]) + " at flat position " + std::to_string(i));
  }
  const KernelTable& kt = kernels();
  return parallel_for(planes, [&](int64_t i) {
    kt.max_pool2d_backward(dx + i * HW, dy + i * PQ, indices + i * PQ, p);
    return true;
  });
}

Status avg_pool2d_forward(float* y, const float* x, const Pool2dParams& p) {
  const KernelTable& kt = kernels();
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q;
  return parallel_for(p.N * p.C, [&](int64_t i) {
    kt.avg_pool2d_forward(y + i * PQ, x + i * HW, p);
    return true;
  });
}

Status avg_pool2d_backward(float* dx, const float* dy, const Pool2dParams& p) {
  const KernelTable& kt = kernels();
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q;
  return parallel_for(p.N * p.C, [&](int64_t i) {
    kt.avg_pool2d_backward(dx + i * HW, dy + i * PQ, p);
    return true;
  });
}

}  // namespace fastconv
