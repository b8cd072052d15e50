// Shapes and parameters of the ops, and the output-size rules.
//
// Shape letters (used in every comment and loop of the library):
//   N batch, C input channels, H,W input size, K output channels,
//   R,S kernel (window) size, P,Q output size, G groups.
//
// The *_make_params functions (one per op family: conv2d, pool2d, linear,
// eltwise) are the single place where user-supplied shapes and parameters
// are validated: every argument of a call, bias and grad_output included.
// The bindings only parse Python objects (dtype, rank) and turn a failed
// Status into an exception (sgemm, the raw GEMM that tests and benchmarks
// call, checks its operands in its binding). The checks use checked 64-bit
// arithmetic only, so a hostile value (2^62, a 2^24+1 spatial size, products
// overflowing int64) gives an exact size or a clean error before anything is
// allocated. Kernels assume params that passed these checks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fastconv/status.h"

namespace fastconv {

// Largest stride, padding, dilation or kernel size accepted (2^31 - 1).
// Keeps every derived quantity (dilated extent, padded size) far from int64
// overflow; no real network comes near it.
constexpr int64_t kMaxParam = 2147483647;

// x is (N,C,H,W), w is (K,C/G,R,S), y is (N,K,P,Q).
struct Conv2dParams {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t K = 0, R = 0, S = 0, P = 0, Q = 0;
  int64_t G = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t dil_h = 1, dil_w = 1;
  // Padding may be asymmetric ("same" with an odd total puts the extra row and
  // column at the bottom/right, as Keras and PyTorch do).
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;

  int64_t Cg() const { return C / G; }  // input channels per group
  int64_t Kg() const { return K / G; }  // output channels per group
};

// What the caller asked for, before validation.
struct Conv2dArgs {
  const char* op = "conv2d";          // names the entry point in messages
  int64_t x_shape[4] = {0, 0, 0, 0};  // (N,C,H,W)
  int64_t w_shape[4] = {0, 0, 0, 0};  // (K,C/G,R,S)
  int64_t stride[2] = {1, 1};
  int64_t dilation[2] = {1, 1};
  int64_t padding[2] = {0, 0};  // symmetric (h, w); ignored when padding_same
  bool padding_same = false;    // output size ceil(n / stride)
  int64_t groups = 1;
  int64_t bias_len = -1;              // the length of a 1-D bias; -1: no bias
  const int64_t* dy_shape = nullptr;  // backward: grad_output's 4 dims, must be (N,K,P,Q)
};

// Validates `a` and fills `p` (including P, Q and the resolved padding).
Status conv2d_make_params(const Conv2dArgs& a, Conv2dParams* p);

// x is (N,C,H,W), y is (N,C,P,Q); windows are R x S.
struct Pool2dParams {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t R = 0, S = 0, P = 0, Q = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;  // symmetric, at most half the kernel
  int64_t dil_h = 1, dil_w = 1;  // max pooling only; 1 for average pooling
  bool ceil_mode = false;
  bool count_include_pad = true;  // average pooling only
  int64_t divisor_override = 0;   // average pooling only; 0 = none
};

struct Pool2dArgs {
  const char* op = "max_pool2d";
  const char* x_name = "x";  // "input_shape" for backward passes
  int64_t x_shape[4] = {0, 0, 0, 0};
  int64_t kernel[2] = {1, 1};
  int64_t stride[2] = {1, 1};
  int64_t padding[2] = {0, 0};
  int64_t dilation[2] = {1, 1};
  bool ceil_mode = false;
  bool count_include_pad = true;
  bool has_divisor_override = false;  // given (not None): must not be 0
  int64_t divisor_override = 0;
  const int64_t* dy_shape = nullptr;  // backward: grad_output's 4 dims, must be (N,C,P,Q)
};

Status pool2d_make_params(const Pool2dArgs& a, Pool2dParams* p);

// Params of a pooling backward pass that is given the input shape and the
// gradient's shape (max_pool2d_backward needs no window geometry: its indices
// say where each gradient goes). Checks that indices and grad_output have the
// same shape, that N and C agree with x and that the sizes fit in int64.
Status pool2d_grad_params(const char* op, const int64_t* dy_shape, const int64_t* indices_shape,
                          const int64_t* x_shape, Pool2dParams* p);

// x is (..., I), w is (O, I), b is (O,), y is (..., O): the leading
// dimensions of x (none for a 1-D x) are one batch of B rows.
struct LinearParams {
  int64_t B = 0, I = 0, O = 0;
};

struct LinearArgs {
  const char* op = "linear";
  std::vector<int64_t> x_shape;                    // (..., I), at least 1 dimension
  int64_t w_shape[2] = {0, 0};                     // (O, I)
  int64_t bias_len = -1;                           // the length of a 1-D bias; -1: no bias
  const std::vector<int64_t>* dy_shape = nullptr;  // backward: grad_output, must be (..., O)
};

Status linear_make_params(const LinearArgs& a, LinearParams* p);

// y's shape for x of x_shape (..., I): (..., out_features).
std::vector<int64_t> linear_output_shape(const std::vector<int64_t>& x_shape, int64_t out_features);

// Elementwise ops (relu, relu_backward): inputs of any rank, all of x's
// shape; n elements each.
struct EltwiseParams {
  int64_t n = 0;
};

// `other` (null for a one-input op) must have x's shape; the names are the
// arguments' ("grad_output", "output").
Status eltwise_make_params(const char* op, const char* x_name, const std::vector<int64_t>& x,
                           const char* other_name, const std::vector<int64_t>* other,
                           EltwiseParams* p);

// Output size of a convolution along one dimension:
//   floor((n + pad_total - dilation*(k-1) - 1) / stride) + 1.
// May be <= 0 (the caller reports it). Arguments must be within kMaxParam
// (n up to 2^62).
int64_t conv2d_output_size(int64_t n, int64_t k, int64_t stride, int64_t pad_total,
                           int64_t dilation);

// PyTorch's pooling rule: as above with symmetric padding, rounding up when
// ceil_mode, except that the last window may not start in the bottom/right
// padding.
int64_t pool2d_output_size(int64_t n, int64_t k, int64_t stride, int64_t pad, int64_t dilation,
                           bool ceil_mode);

// "same" padding for one dimension: output ceil(n / stride), total padding
// max((out-1)*stride + dilation*(k-1) + 1 - n, 0), front = total / 2.
void conv2d_same_padding(int64_t n, int64_t k, int64_t stride, int64_t dilation, int64_t* pad_front,
                         int64_t* pad_back);

// Checked arithmetic: false when the result does not fit in int64.
inline bool checked_mul(int64_t a, int64_t b, int64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
inline bool checked_add(int64_t a, int64_t b, int64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}
// Product of n factors; false on overflow.
bool checked_product(const int64_t* v, int n, int64_t* out);

std::string shape_str(const int64_t* v, int n);  // "(2, 3, 4, 5)"
std::string shape_str(const std::vector<int64_t>& v);

}  // namespace fastconv
