// Pooling op drivers: (n, c) planes in parallel, grouped into tasks of >= 16 K elements.
#include "fastconv/pool2d.h"

#include <atomic>
#include <string>

#include "fastconv/threading.h"
#include "kernels/kernel_table.h"

namespace fastconv {
namespace {

// Runs body(plane) for every (n, c) plane, in tasks of whole planes holding
// at least ~16 K elements (of the larger of input and output): one task per
// 11x11 plane would spend more time scheduling than working.
template <class Body>
Status for_each_plane(const Pool2dParams& p, Body&& body) {
  const int64_t planes = p.N * p.C;
  const int64_t per_plane = p.H * p.W > p.P * p.Q ? p.H * p.W : p.P * p.Q;
  const int64_t group = per_plane >= 16384 ? 1 : 16384 / per_plane;
  return parallel_for((planes + group - 1) / group, [&](int64_t t) {
    const int64_t end = (t + 1) * group < planes ? (t + 1) * group : planes;
    for (int64_t i = t * group; i < end; ++i) body(i);
    return true;
  });
}

}  // namespace

Status max_pool2d_forward(float* y, int64_t* indices, const float* x, const Pool2dParams& p) {
  const KernelTable& kt = kernels();
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q;
  return for_each_plane(p, [&](int64_t i) {
    kt.max_pool2d_forward(y + i * PQ, indices ? indices + i * PQ : nullptr, x + i * HW, p);
  });
}

Status max_pool2d_backward(float* dx, const float* dy, const int64_t* indices,
                           const Pool2dParams& p) {
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q;
  const KernelTable& kt = kernels();
  // Each plane reports its first out-of-range index; keep the smallest
  // position over all planes, so the message does not depend on threads.
  std::atomic<int64_t> bad{-1};
  FASTCONV_RETURN_IF_ERROR(for_each_plane(p, [&](int64_t i) {
    const int64_t b = kt.max_pool2d_backward(dx + i * HW, dy + i * PQ, indices + i * PQ, p);
    if (b >= 0) {
      const int64_t pos = i * PQ + b;
      int64_t cur = bad.load();
      while ((cur < 0 || pos < cur) && !bad.compare_exchange_weak(cur, pos)) {
      }
    }
  }));
  if (bad.load() >= 0) {
    const int64_t pos = bad.load();
    return Status::InvalidArgument(
        "max_pool2d_backward: indices must lie in [0, H*W) = [0, " + std::to_string(HW) +
        ") for input planes of " + std::to_string(p.H) + "x" + std::to_string(p.W) + "; found " +
        std::to_string(indices[pos]) + " at flat position " + std::to_string(pos));
  }
  return Status::Ok();
}

Status avg_pool2d_forward(float* y, const float* x, const Pool2dParams& p) {
  const KernelTable& kt = kernels();
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q;
  return for_each_plane(p, [&](int64_t i) { kt.avg_pool2d_forward(y + i * PQ, x + i * HW, p); });
}

Status avg_pool2d_backward(float* dx, const float* dy, const Pool2dParams& p) {
  const KernelTable& kt = kernels();
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q;
  return for_each_plane(p, [&](int64_t i) { kt.avg_pool2d_backward(dx + i * HW, dy + i * PQ, p); });
}

}  // namespace fastconv
