// 2-D max and average pooling, forward and backward, float32, NCHW, with
// PyTorch's semantics (see pool2d_make_params for the size rules).
//
// x is (N,C,H,W), y is (N,C,P,Q), indices is (N,C,P,Q) int64 flat positions
// h*W + w inside each (n, c) plane. Every function overwrites its outputs.
#pragma once

#include <cstdint>

#include "fastconv/shapes.h"
#include "fastconv/status.h"

namespace fastconv {

// Max pooling: windows visit positions in row-major order and skip padding;
// a value wins when it is greater than the running max or NaN (so ties keep
// the first maximum and the last NaN wins); an all -inf window gives -inf and
// its first in-bounds index. `indices` may be null.
Status max_pool2d_forward(float* y, int64_t* indices, const float* x, const Pool2dParams& p);

// dx = 0, then dx[n, c].flat[indices[n, c, p, q]] += dy[n, c, p, q] in
// row-major (p, q) order. Every index is checked to lie in [0, H*W) as it is
// read (once: the caller's array may change under us); an out-of-range index
// is an InvalidArgument error, and dx is then unspecified (the bindings drop it).
Status max_pool2d_backward(float* dx, const float* dy, const int64_t* indices,
                           const Pool2dParams& p);

// Average pooling: sum of the in-bounds window elements in row-major order,
// divided once by divisor_override, or by the window size counted with the
// padding (count_include_pad) or without it.
Status avg_pool2d_forward(float* y, const float* x, const Pool2dParams& p);

// dx = 0, then for each window in row-major (p, q) order every in-bounds
// element of the window += dy[p, q] / divisor.
Status avg_pool2d_backward(float* dx, const float* dy, const Pool2dParams& p);

}  // namespace fastconv
