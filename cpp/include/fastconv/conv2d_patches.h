// Where a convolution reads its patches: plain data shared by the
// implicit-GEMM drivers (cpp/src/conv2d_implicit.cpp) and the packing
// kernels (conv2d_pack_patches in kernels/registry.inc). ISA translation
// units include it.
#pragma once

#include <cstdint>

namespace fastconv {

// The patch matrix of one group of a batch: row m = output pixel (n, p, q)
// in [0, N*P*Q), column = tap (c, r, s) in [0, Cg*R*S):
//   patch(m, (c, r, s)) = x[n][g*Cg + c][p*stride_h + off_h + r*dil_h][q*stride_w + off_w +
//   s*dil_w],
// 0 where that position is outside the H x W image (padding). off_h and
// off_w are -pad_top and -pad_left, or any other offset (backward-input's
// flipped problem has positive ones).
struct PatchSource {
  const float* x = nullptr;  // (N, C, H, W), C-contiguous
  int64_t C = 0, H = 0, W = 0;
  int64_t Cg = 0, R = 0, S = 0;  // taps: Cg * R * S
  int64_t P = 0, Q = 0;          // output size
  int64_t stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  int64_t off_h = 0, off_w = 0;
  int64_t g = 0;  // the group whose channels are read
};

}  // namespace fastconv
