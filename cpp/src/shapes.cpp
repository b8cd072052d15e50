// Validation of conv2d, pool2d and linear arguments (every shape and value
// check of a call) and the output-size rules. Every message names the op, the
// argument and the shapes involved; this is the text of the ValueError the
// Python user sees.
#include "fastconv/shapes.h"

#include <algorithm>
#include <sstream>

namespace fastconv {
namespace {

// Floor division for a positive divisor (C++ '/' truncates toward zero).
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

std::string pair_str(const int64_t* v) {
  std::ostringstream s;
  s << "(" << v[0] << ", " << v[1] << ")";
  return s.str();
}

Status check_pair_range(const char* op, const char* name, const int64_t* v, int64_t lo) {
  for (int i = 0; i < 2; ++i) {
    if (v[i] < lo || v[i] > kMaxParam) {
      std::ostringstream s;
      s << op << ": " << name << " must be in [" << lo << ", " << kMaxParam << "], got "
        << pair_str(v);
      return Status::InvalidArgument(s.str());
    }
  }
  return Status::Ok();
}

// Messages are built only when a check fails (a call that passes formats no
// text): `what()` and `of()` return the words that name the argument.

// OutOfRange unless the n dims have an element count that fits in int64;
// what() names them, e.g. "weight (1, 2, 3, 4)".
template <class What>
Status check_count(const char* op, What what, const int64_t* dims, int n) {
  int64_t count;
  if (checked_product(dims, n, &count)) return Status::Ok();
  return Status::OutOfRange(std::string(op) + ": " + what() +
                            " has more elements than int64 can count");
}

// N may be 0; every other dimension of x must be >= 1, and the element count
// must fit in int64.
Status check_x_shape(const char* op, const int64_t* x, const char* name = "x") {
  auto what = [&] { return std::string(name) + " of shape " + shape_str(x, 4); };
  if (x[0] < 0 || x[1] < 1 || x[2] < 1 || x[3] < 1) {
    return Status::InvalidArgument(std::string(op) + ": " + what() +
                                   " must have C, H, W >= 1 (N may be 0)");
  }
  return check_count(op, what, x, 4);
}

// N, C, H, W of a conv or pool from x (N,C,H,W).
template <class Params>
void set_input_dims(const int64_t* x, Params* q) {
  q->N = x[0], q->C = x[1], q->H = x[2], q->W = x[3];
}

// A backward pass's grad_output dy (null in a forward pass) must be the
// forward output y; of() names the forward inputs ("x (..) and weight (..)").
template <class Of>
Status check_grad_output(const char* op, const int64_t* dy, const int64_t* y, Of of) {
  if (dy == nullptr || std::equal(dy, dy + 4, y)) return Status::Ok();
  return Status::InvalidArgument(std::string(op) + ": grad_output has shape " + shape_str(dy, 4) +
                                 " but the forward output for " + of() + " has shape " +
                                 shape_str(y, 4));
}

}  // namespace

bool checked_product(const int64_t* v, int n, int64_t* out) {
  int64_t acc = 1;
  for (int i = 0; i < n; ++i) {
    if (!checked_mul(acc, v[i], &acc)) return false;
  }
  *out = acc;
  return true;
}

std::string shape_str(const int64_t* v, int n) {
  std::ostringstream s;
  s << "(";
  for (int i = 0; i < n; ++i) s << (i ? ", " : "") << v[i];
  if (n == 1) s << ",";
  s << ")";
  return s.str();
}

std::string shape_str(const std::vector<int64_t>& v) {
  return shape_str(v.data(), static_cast<int>(v.size()));
}

int64_t conv2d_output_size(int64_t n, int64_t k, int64_t stride, int64_t pad_total,
                           int64_t dilation) {
  // n <= 2^62 and the rest <= 2^31 - 1, so no intermediate overflows.
  return floor_div(n + pad_total - dilation * (k - 1) - 1, stride) + 1;
}

int64_t pool2d_output_size(int64_t n, int64_t k, int64_t stride, int64_t pad, int64_t dilation,
                           bool ceil_mode) {
  const int64_t span = n + 2 * pad - dilation * (k - 1) - 1;
  int64_t out = floor_div(span + (ceil_mode ? stride - 1 : 0), stride) + 1;
  if (ceil_mode && (out - 1) * stride >= n + pad) --out;
  return out;
}

void conv2d_same_padding(int64_t n, int64_t k, int64_t stride, int64_t dilation, int64_t* pad_front,
                         int64_t* pad_back) {
  const int64_t out = (n + stride - 1) / stride;
  int64_t total = (out - 1) * stride + dilation * (k - 1) + 1 - n;
  if (total < 0) total = 0;
  *pad_front = total / 2;
  *pad_back = total - total / 2;
}

Status conv2d_make_params(const Conv2dArgs& a, Conv2dParams* p) {
  const char* op = a.op;
  const int64_t* x = a.x_shape;
  const int64_t* w = a.w_shape;
  FASTCONV_RETURN_IF_ERROR(check_x_shape(op, x));
  FASTCONV_RETURN_IF_ERROR(check_pair_range(op, "stride", a.stride, 1));
  FASTCONV_RETURN_IF_ERROR(check_pair_range(op, "dilation", a.dilation, 1));
  if (!a.padding_same) FASTCONV_RETURN_IF_ERROR(check_pair_range(op, "padding", a.padding, 0));
  if (a.groups < 1 || a.groups > kMaxParam) {
    return Status::InvalidArgument(std::string(op) + ": groups must be in [1, " +
                                   std::to_string(kMaxParam) + "], got " +
                                   std::to_string(a.groups));
  }
  const std::string shapes = "x " + shape_str(x, 4) + ", weight " + shape_str(w, 4) +
                             ", groups=" + std::to_string(a.groups);
  if (w[0] < 1 || w[1] < 1 || w[2] < 1 || w[3] < 1 || w[2] > kMaxParam || w[3] > kMaxParam) {
    return Status::InvalidArgument(std::string(op) +
                                   ": weight must have K, C/groups, R, S >= 1 (R, S <= " +
                                   std::to_string(kMaxParam) + "); got " + shapes);
  }
  const int64_t G = a.groups;
  if (x[1] % G != 0) {
    return Status::InvalidArgument(std::string(op) + ": groups=" + std::to_string(G) +
                                   " does not divide C=" + std::to_string(x[1]) + "; " + shapes);
  }
  if (w[0] % G != 0) {
    return Status::InvalidArgument(std::string(op) + ": groups=" + std::to_string(G) +
                                   " does not divide K=" + std::to_string(w[0]) + "; " + shapes);
  }
  if (x[1] / G != w[1]) {
    return Status::InvalidArgument(std::string(op) + ": x has C=" + std::to_string(x[1]) +
                                   " but weight expects C=" + std::to_string(w[1] * G) +
                                   " (C/groups=" + std::to_string(w[1]) + " per group); " + shapes);
  }
  FASTCONV_RETURN_IF_ERROR(check_count(op, [&] { return "weight " + shape_str(w, 4); }, w, 4));
  Conv2dParams q;
  set_input_dims(x, &q);
  q.K = w[0];
  q.R = w[2];
  q.S = w[3];
  q.G = G;
  q.stride_h = a.stride[0];
  q.stride_w = a.stride[1];
  q.dil_h = a.dilation[0];
  q.dil_w = a.dilation[1];
  if (q.H > (int64_t{1} << 62) || q.W > (int64_t{1} << 62)) {
    return Status::OutOfRange(std::string(op) + ": spatial size too large; " + shapes);
  }
  if (a.padding_same) {
    conv2d_same_padding(q.H, q.R, q.stride_h, q.dil_h, &q.pad_top, &q.pad_bottom);
    conv2d_same_padding(q.W, q.S, q.stride_w, q.dil_w, &q.pad_left, &q.pad_right);
  } else {
    q.pad_top = q.pad_bottom = a.padding[0];
    q.pad_left = q.pad_right = a.padding[1];
  }
  q.P = conv2d_output_size(q.H, q.R, q.stride_h, q.pad_top + q.pad_bottom, q.dil_h);
  q.Q = conv2d_output_size(q.W, q.S, q.stride_w, q.pad_left + q.pad_right, q.dil_w);
  if (q.P < 1 || q.Q < 1) {
    const int64_t pq[2] = {q.P, q.Q};
    return Status::InvalidArgument(
        std::string(op) + ": the dilated kernel is larger than the padded input (output size " +
        pair_str(pq) + " <= 0); " + shapes + ", stride " + pair_str(a.stride) + ", dilation " +
        pair_str(a.dilation) + ", padding (top, bottom, left, right) = (" +
        std::to_string(q.pad_top) + ", " + std::to_string(q.pad_bottom) + ", " +
        std::to_string(q.pad_left) + ", " + std::to_string(q.pad_right) + ")");
  }
  const int64_t y[4] = {q.N, q.K, q.P, q.Q};
  const int64_t col[5] = {q.Cg(), q.R, q.S, q.P, q.Q};  // one image's im2col buffer
  int64_t yn, coln;
  if (!checked_product(y, 4, &yn) || !checked_product(col, 5, &coln) || coln > (int64_t{1} << 60)) {
    return Status::OutOfRange(std::string(op) + ": output " + shape_str(y, 4) +
                              " or its workspace has more elements than int64 can count; " +
                              shapes);
  }
  if (a.bias_len >= 0 && a.bias_len != q.K) {
    return Status::InvalidArgument(std::string(op) + ": bias must have shape (K,) = (" +
                                   std::to_string(q.K) + ",) for weight " + shape_str(w, 4) +
                                   ", got " + shape_str(&a.bias_len, 1));
  }
  FASTCONV_RETURN_IF_ERROR(check_grad_output(op, a.dy_shape, y, [&] {
    return "x " + shape_str(x, 4) + " and weight " + shape_str(w, 4);
  }));
  *p = q;
  return Status::Ok();
}

Status pool2d_make_params(const Pool2dArgs& a, Pool2dParams* p) {
  const char* op = a.op;
  const int64_t* x = a.x_shape;
  if (a.has_divisor_override && a.divisor_override == 0) {
    return Status::InvalidArgument(std::string(op) + ": divisor_override must not be 0");
  }
  FASTCONV_RETURN_IF_ERROR(check_x_shape(op, x, a.x_name));
  FASTCONV_RETURN_IF_ERROR(check_pair_range(op, "kernel_size", a.kernel, 1));
  FASTCONV_RETURN_IF_ERROR(check_pair_range(op, "stride", a.stride, 1));
  FASTCONV_RETURN_IF_ERROR(check_pair_range(op, "padding", a.padding, 0));
  FASTCONV_RETURN_IF_ERROR(check_pair_range(op, "dilation", a.dilation, 1));
  for (int i = 0; i < 2; ++i) {
    if (a.padding[i] > a.kernel[i] / 2) {
      return Status::InvalidArgument(std::string(op) + ": padding " + pair_str(a.padding) +
                                     " must be at most half of kernel_size " + pair_str(a.kernel));
    }
  }
  if (x[2] > (int64_t{1} << 62) || x[3] > (int64_t{1} << 62)) {
    return Status::OutOfRange(std::string(op) + ": spatial size too large; x " + shape_str(x, 4));
  }
  Pool2dParams q;
  set_input_dims(x, &q);
  q.R = a.kernel[0];
  q.S = a.kernel[1];
  q.stride_h = a.stride[0];
  q.stride_w = a.stride[1];
  q.pad_h = a.padding[0];
  q.pad_w = a.padding[1];
  q.dil_h = a.dilation[0];
  q.dil_w = a.dilation[1];
  q.ceil_mode = a.ceil_mode;
  q.count_include_pad = a.count_include_pad;
  q.divisor_override = a.divisor_override;
  q.P = pool2d_output_size(q.H, q.R, q.stride_h, q.pad_h, q.dil_h, q.ceil_mode);
  q.Q = pool2d_output_size(q.W, q.S, q.stride_w, q.pad_w, q.dil_w, q.ceil_mode);
  if (q.P < 1 || q.Q < 1) {
    const int64_t pq[2] = {q.P, q.Q};
    return Status::InvalidArgument(
        std::string(op) + ": output size " + pair_str(pq) + " <= 0 for x " + shape_str(x, 4) +
        ", kernel_size " + pair_str(a.kernel) + ", stride " + pair_str(a.stride) + ", padding " +
        pair_str(a.padding) + ", dilation " + pair_str(a.dilation));
  }
  const int64_t y[4] = {q.N, q.C, q.P, q.Q};
  FASTCONV_RETURN_IF_ERROR(check_count(op, [&] { return "output " + shape_str(y, 4); }, y, 4));
  FASTCONV_RETURN_IF_ERROR(check_grad_output(
      op, a.dy_shape, y, [&] { return std::string(a.x_name) + " " + shape_str(x, 4); }));
  *p = q;
  return Status::Ok();
}

Status pool2d_grad_params(const char* op, const int64_t* dy, const int64_t* indices,
                          const int64_t* x, Pool2dParams* p) {
  if (!std::equal(indices, indices + 4, dy)) {
    return Status::InvalidArgument(std::string(op) + ": indices " + shape_str(indices, 4) +
                                   " and grad_output " + shape_str(dy, 4) +
                                   " must have the same shape");
  }
  FASTCONV_RETURN_IF_ERROR(check_x_shape(op, x, "input_shape"));
  if (dy[0] != x[0] || dy[1] != x[1] || dy[2] < 1 || dy[3] < 1) {
    return Status::InvalidArgument(std::string(op) + ": grad_output " + shape_str(dy, 4) +
                                   " does not match input_shape " + shape_str(x, 4) +
                                   " (N and C must agree, P and Q must be >= 1)");
  }
  FASTCONV_RETURN_IF_ERROR(
      check_count(op, [&] { return "grad_output " + shape_str(dy, 4); }, dy, 4));
  Pool2dParams q;
  set_input_dims(x, &q);
  q.P = dy[2], q.Q = dy[3];
  *p = q;
  return Status::Ok();
}

std::vector<int64_t> linear_output_shape(const std::vector<int64_t>& x_shape,
                                         int64_t out_features) {
  std::vector<int64_t> y(x_shape.begin(), x_shape.end() - (x_shape.empty() ? 0 : 1));
  y.push_back(out_features);
  return y;
}

Status linear_make_params(const LinearArgs& a, LinearParams* p) {
  const char* op = a.op;
  const std::vector<int64_t>& x = a.x_shape;
  const int64_t* w = a.w_shape;
  if (x.empty()) {
    return Status::InvalidArgument(std::string(op) +
                                   ": x must have at least 1 dimension (..., in_features)");
  }
  const int64_t in = x.back(), out = w[0];
  if (w[1] != in) {
    return Status::InvalidArgument(std::string(op) + ": x " + shape_str(x) +
                                   " has in_features=" + std::to_string(in) + " but weight " +
                                   shape_str(w, 2) + " expects " + std::to_string(w[1]));
  }
  if (a.bias_len >= 0 && a.bias_len != out) {
    return Status::InvalidArgument(std::string(op) + ": bias must have shape (out_features,) = (" +
                                   std::to_string(out) + ",), got " + shape_str(&a.bias_len, 1));
  }
  // x may hold no elements (in_features = 0) and still have a batch that
  // overflows, and y (..., out_features) may be larger than x.
  int64_t batch;
  if (!checked_product(x.data(), static_cast<int>(x.size()) - 1, &batch)) {
    return Status::OutOfRange(std::string(op) + ": x " + shape_str(x) + " is too large");
  }
  const std::vector<int64_t> y = linear_output_shape(x, out);
  int64_t y_count;
  if (!checked_product(y.data(), static_cast<int>(y.size()), &y_count)) {
    return Status::OutOfRange(std::string(op) + ": output " + shape_str(y) + " is too large");
  }
  if (a.dy_shape != nullptr && *a.dy_shape != y) {
    return Status::InvalidArgument(std::string(op) + ": grad_output has shape " +
                                   shape_str(*a.dy_shape) + " but the forward output has shape " +
                                   shape_str(y));
  }
  p->B = batch, p->I = in, p->O = out;
  return Status::Ok();
}

Status eltwise_make_params(const char* op, const char* x_name, const std::vector<int64_t>& x,
                           const char* other_name, const std::vector<int64_t>* other,
                           EltwiseParams* p) {
  if (other != nullptr && *other != x) {
    return Status::InvalidArgument(std::string(op) + ": " + x_name + " " + shape_str(x) + " and " +
                                   other_name + " " + shape_str(*other) +
                                   " must have the same shape");
  }
  // Existing arrays: the count fits in int64.
  if (!checked_product(x.data(), static_cast<int>(x.size()), &p->n)) {
    return Status::OutOfRange(std::string(op) + ": " + x_name + " " + shape_str(x) +
                              " has more elements than int64 can count");
  }
  return Status::Ok();
}

}  // namespace fastconv
