// Linear (fully connected) layers, float32, on the one GEMM (fastconv/gemm.h).
//
// x is (B,I), w is (O,I), b is (O), y is (B,O), as PyTorch's linear; B, I, O
// come from linear_make_params (fastconv/shapes.h).
// Every function overwrites its output (=) and never reads it first.
#pragma once

#include <cstdint>

#include "fastconv/shapes.h"
#include "fastconv/status.h"

namespace fastconv {

// y (B,O) = x (B,I) * w (O,I)^T + b (O); b may be null.
Status linear_forward(float* y, const float* x, const float* w, const float* b,
                      const LinearParams& p);

// Gradients of linear_forward, given dy (B,O) = d(loss)/dy:
//   dx (B,I) = dy * w          dw (O,I) = dy^T * x          db (O) = sum over B of dy
// db adds each column in batch order in double, so it is deterministic.
Status linear_backward_input(float* dx, const float* dy, const float* w, const LinearParams& p);
Status linear_backward_weight(float* dw, const float* dy, const float* x, const LinearParams& p);
Status linear_backward_bias(float* db, const float* dy, const LinearParams& p);

}  // namespace fastconv
