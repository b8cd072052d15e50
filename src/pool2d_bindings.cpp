// pybind11 glue for max and average pooling.
#include <string>

#include "args.h"
#include "fastconv/pool2d.h"

namespace fastconv_py {
namespace {

using fastconv::Pool2dArgs;
using fastconv::Pool2dParams;

// Average pooling has no dilation and max pooling no count_include_pad or
// divisor_override: their callers pass nullptr for those. A Python None is
// accepted only where PyTorch accepts it (stride, divisor_override), and an
// empty stride means the default too, as in PyTorch (stride=() is its "not
// given").
bool is_empty_sequence(py::handle obj) {
  return (PyTuple_Check(obj.ptr()) || PyList_Check(obj.ptr())) && py::len(obj) == 0;
}

py::object max_pool2d_forward(py::handle x_obj, py::handle kernel, py::handle stride,
                              py::handle padding, py::handle dilation, py::handle ceil_mode,
                              py::handle return_indices) {
  const char* op = "max_pool2d";
  const ArrayIn x = float32_array(x_obj, op, "x", 4, "(N, C, H, W)");
  const Pool2dParams p =
      pool_params(op, x.shape, kernel, stride, padding, &dilation, ceil_mode, nullptr, nullptr);
  const PoolOutputs out({p.N, p.C, p.P, p.Q}, bool_arg(return_indices, op, "return_indices"));
  call_without_gil(
      [&] { return fastconv::max_pool2d_forward(out.y_data, out.indices_data, x.f32(), p); });
  return out.result();
}

py::array max_pool2d_backward(py::handle dy_obj, py::handle idx_obj, py::handle shape_obj) {
  const char* op = "max_pool2d_backward";
  const ArrayIn dy = float32_array(dy_obj, op, "grad_output", 4, "(N, C, P, Q)");
  const ArrayIn idx = int64_array(idx_obj, op, "indices", 4, "(N, C, P, Q)");
  const std::vector<int64_t> x_shape = shape_arg(shape_obj, op, "input_shape", 4);
  Pool2dParams p;
  throw_if_error(
      fastconv::pool2d_grad_params(op, dy.shape.data(), idx.shape.data(), x_shape.data(), &p));
  return float32_result(x_shape, [&](float* dx) {
    return fastconv::max_pool2d_backward(dx, dy.f32(), idx.i64(), p);
  });
}

py::array avg_pool2d_forward(py::handle x_obj, py::handle kernel, py::handle stride,
                             py::handle padding, py::handle ceil_mode, py::handle count_include_pad,
                             py::handle divisor_override) {
  const char* op = "avg_pool2d";
  const ArrayIn x = float32_array(x_obj, op, "x", 4, "(N, C, H, W)");
  const Pool2dParams p = pool_params(op, x.shape, kernel, stride, padding, nullptr, ceil_mode,
                                     &count_include_pad, &divisor_override);
  return float32_result({p.N, p.C, p.P, p.Q},
                        [&](float* y) { return fastconv::avg_pool2d_forward(y, x.f32(), p); });
}

py::array avg_pool2d_backward(py::handle dy_obj, py::handle shape_obj, py::handle kernel,
                              py::handle stride, py::handle padding, py::handle ceil_mode,
                              py::handle count_include_pad, py::handle divisor_override) {
  const char* op = "avg_pool2d_backward";
  const ArrayIn dy = float32_array(dy_obj, op, "grad_output", 4, "(N, C, P, Q)");
  const std::vector<int64_t> x_shape = shape_arg(shape_obj, op, "input_shape", 4);
  const Pool2dParams p = pool_params(op, x_shape, kernel, stride, padding, nullptr, ceil_mode,
                                     &count_include_pad, &divisor_override, &dy.shape);
  return float32_result(x_shape,
                        [&](float* dx) { return fastconv::avg_pool2d_backward(dx, dy.f32(), p); });
}

}  // namespace

// Declared in args.h: the fused conv2d + max_pool2d binding uses it too.
Pool2dParams pool_params(const char* op, const std::vector<int64_t>& x_shape, py::handle kernel,
                         py::handle stride, py::handle padding, const py::handle* dilation,
                         py::handle ceil_mode, const py::handle* count_include_pad,
                         const py::handle* divisor_override, const std::vector<int64_t>* dy_shape) {
  Pool2dArgs a;
  a.op = op;
  a.x_name = std::string(op).find("backward") != std::string::npos ? "input_shape" : "x";
  for (int i = 0; i < 4; ++i) a.x_shape[i] = x_shape[i];
  const auto k = pair_arg(kernel, op, "kernel_size");
  const auto s = stride.is_none() || is_empty_sequence(stride) ? k : pair_arg(stride, op, "stride");
  const auto pa = pair_arg(padding, op, "padding");
  const auto d = dilation ? pair_arg(*dilation, op, "dilation") : std::array<int64_t, 2>{1, 1};
  for (int i = 0; i < 2; ++i) {
    a.kernel[i] = k[i];
    a.stride[i] = s[i];
    a.padding[i] = pa[i];
    a.dilation[i] = d[i];
  }
  a.ceil_mode = bool_arg(ceil_mode, op, "ceil_mode");
  if (count_include_pad) {
    a.count_include_pad = bool_arg(*count_include_pad, op, "count_include_pad");
  }
  if (divisor_override && !divisor_override->is_none()) {
    a.has_divisor_override = true;
    a.divisor_override = int_arg(*divisor_override, op, "divisor_override");
  }
  if (dy_shape != nullptr) a.dy_shape = dy_shape->data();
  Pool2dParams p;
  throw_if_error(fastconv::pool2d_make_params(a, &p));
  return p;
}

void bind_pool2d(py::module_& m) {
  m.def("max_pool2d_forward", &max_pool2d_forward, py::arg("x"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"),
        py::arg("return_indices"));
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("grad_output"), py::arg("indices"),
        py::arg("input_shape"));
  m.def("avg_pool2d_forward", &avg_pool2d_forward, py::arg("x"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"), py::arg("count_include_pad"),
        py::arg("divisor_override"));
  m.def("avg_pool2d_backward", &avg_pool2d_backward, py::arg("grad_output"), py::arg("input_shape"),
        py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"),
        py::arg("count_include_pad"), py::arg("divisor_override"));
}

}  // namespace fastconv_py
