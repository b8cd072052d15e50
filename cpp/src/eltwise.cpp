// Elementwise op drivers: blocks of 64 Ki elements per task.
#include "fastconv/eltwise.h"

#include "fastconv/threading.h"
#include "kernels/kernel_table.h"

namespace fastconv {
namespace {
constexpr int64_t kBlock = int64_t{1} << 16;
inline int64_t blocks(int64_t n) { return (n + kBlock - 1) / kBlock; }
inline int64_t block_len(int64_t t, int64_t n) {
  return n - t * kBlock < kBlock ? n - t * kBlock : kBlock;
}
}  // namespace

Status relu_forward(float* y, const float* x, int64_t n) {
  const KernelTable& kt = kernels();
  return parallel_for(blocks(n), [&](int64_t t) {
    kt.relu_forward(y + t * kBlock, x + t * kBlock, block_len(t, n));
    return true;
  });
}

Status relu_backward(float* dx, const float* dy, const float* y, int64_t n) {
  const KernelTable& kt = kernels();
  return parallel_for(blocks(n), [&](int64_t t) {
    kt.relu_backward(dx + t * kBlock, dy + t * kBlock, y + t * kBlock, block_len(t, n));
    return true;
  });
}

}  // namespace fastconv
