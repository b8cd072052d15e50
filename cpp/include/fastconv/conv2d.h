// 2-D convolution, forward and backward, float32, NCHW.
//
// x is (N,C,H,W), w is (K,C/G,R,S), b is (K), y is (N,K,P,Q).
// Every function overwrites its output (=) and never reads it first.
// Inputs must be C-contiguous; params must come from conv2d_make_params.
#pragma once

#include <string_view>

#include "fastconv/shapes.h"
#include "fastconv/status.h"

namespace fastconv {

enum class ConvAlgo {
  kAuto = 0,
  kDirect,    // loops over (c, r, s) on whole output rows; no workspace
  kIm2col,    // one image at a time: column buffer (C/G*R*S, P*Q) + sgemm
  kImplicit,  // the batch as one GEMM, patches packed from the images
};
// Every algorithm, kAuto first: the one list that names them.
constexpr ConvAlgo kConvAlgos[] = {ConvAlgo::kAuto, ConvAlgo::kDirect, ConvAlgo::kIm2col,
                                   ConvAlgo::kImplicit};
enum class ConvPass { kForward = 0, kBackwardInput, kBackwardWeight };

const char* conv_algo_name(ConvAlgo a);  // "direct", "im2col", "auto"
// False if unknown; the whole string counts (Python strings may hold NUL).
bool conv_algo_from_name(std::string_view s, ConvAlgo* a);
const char* conv_pass_name(ConvPass p);  // "forward", "backward_input", ...

// The algorithm kAuto resolves to for this pass and shape.
ConvAlgo conv2d_choose_algo(ConvPass pass, const Conv2dParams& p);

// y = conv(x, w) + b; b may be null. With relu, y = max(y, 0) (NaN kept),
// applied as each output is stored (no second pass over y).
Status conv2d_forward(float* y, const float* x, const float* w, const float* b,
                      const Conv2dParams& p, ConvAlgo algo, bool relu = false);
// dx = d(loss)/dx given dy = d(loss)/dy.
// pooled, indices (N, K, pool.P, pool.Q) = max_pool2d(conv2d(x, w, b) (relu))
// with the pooling `pool` over y's shape (N, K, P, Q); indices may be null.
// Where the forward's algorithm is the shifted-copy direct one, an image's y
// is pooled while still in cache and never written out; otherwise y is
// computed whole in a temporary, then pooled. Same values either way.
Status conv2d_forward_max_pool2d(float* pooled, int64_t* indices, const float* x, const float* w,
                                 const float* b, const Conv2dParams& p, ConvAlgo algo, bool relu,
                                 const Pool2dParams& pool);

Status conv2d_backward_input(float* dx, const float* dy, const float* w, const Conv2dParams& p,
                             ConvAlgo algo);
// dw = sum over the batch of dy (x) x.
Status conv2d_backward_weight(float* dw, const float* dy, const float* x, const Conv2dParams& p,
                              ConvAlgo algo);
// db[k] = sum of dy[:, k, :, :].
Status conv2d_backward_bias(float* db, const float* dy, const Conv2dParams& p);

}  // namespace fastconv
