// Elementwise ops of the layers: ReLU forward and backward, float32, any
// shape (n elements). Overwrite their output (=).
#pragma once

#include <cstdint>

#include "fastconv/status.h"

namespace fastconv {

// y = max(x, 0); NaN stays NaN (as torch.relu).
Status relu_forward(float* y, const float* x, int64_t n);
// dx = dy where y > 0, else 0 (y is the forward output, as PyTorch's
// threshold_backward: NaN in y gives 0).
Status relu_backward(float* dx, const float* dy, const float* y, int64_t n);

}  // namespace fastconv
