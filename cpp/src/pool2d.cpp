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
  const KernelTable& kt = kernels();
  // Each plane reports its first out-of-range index; keep the smallest
  // position over all planes, so the message does not depend on threads.
  std::atomic<int64_t> bad{-1};
  FASTCONV_RETURN_IF_ERROR(parallel_for(planes, [&](int64_t i) {
    const int64_t b = kt.max_pool2d_backward(dx + i * HW, dy + i * PQ, indices + i * PQ, p);
    if (b >= 0) {
      const int64_t pos = i * PQ + b;
      int64_t cur = bad.load();
      while ((cur < 0 || pos < cur) && !bad.compare_exchange_weak(cur, pos)) {
      }
    }
    return true;
  }));
  if (bad.load() >= 0) {
    const int64_t pos = bad.load();
    return Status::InvalidArgument(
        "max_pool2d_backward: indices must lie in [0, H*W) = [0, " + std::to_string(HW) +
        ") for input planes of " + std::to_string(p.H) + "x" + std::to_string(p.W) +
        "; found " + std::to_string(indices[pos]) + " at flat position " + std::to_string(pos));
  }
  return Status::Ok();
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
