// Linear (fully connected) layers, float32, on the one GEMM (fastconv/gemm.h).
//
// x is (B,I), w is (O,I), b is (O), y is (B,O), as PyTorch's linear.
// Every function overwrites its output (=) and never reads it first.
#pragma once

#include <cstdint>

#include "fastconv/status.h"

namespace fastconv {

// y (B,O) = x (B,I) * w (O,I)^T + b (O); b may be null.
Status linear_forward(float* y, const float* x, const float* w, const float* b, int64_t batch,
                      int64_t in_features, int64_t out_features);

// Gradients of linear_forward, given dy (B,O) = d(loss)/dy:
//   dx (B,I) = dy * w          dw (O,I) = dy^T * x          db (O) = sum over B of dy
// db adds each column in batch order in double, so it is deterministic.
Status linear_backward_input(float* dx, const float* dy, const float* w, int64_t batch,
                             int64_t in_features, int64_t out_features);
Status linear_backward_weight(float* dw, const float* dy, const float* x, int64_t batch,
                              int64_t in_features, int64_t out_features);
Status linear_backward_bias(float* db, const float* dy, int64_t batch, int64_t out_features);

}  // namespace fastconv
