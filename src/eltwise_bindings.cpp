// pybind11 glue for the elementwise ops (ReLU forward and backward).
#include <string>

#include "args.h"
#include "fastconv/eltwise.h"

namespace fastconv_py {
namespace {

// Validated params (eltwise_make_params checks the shapes).
fastconv::EltwiseParams eltwise_params(const char* op, const char* x_name, const ArrayIn& x,
                                       const char* other_name = nullptr,
                                       const ArrayIn* other = nullptr) {
  fastconv::EltwiseParams p;
  throw_if_error(fastconv::eltwise_make_params(op, x_name, x.shape, other_name,
                                               other ? &other->shape : nullptr, &p));
  return p;
}

py::array relu(py::handle x_obj) {
  const ArrayIn x = float32_array(x_obj, "relu", "x", kAnyRank, "");
  const fastconv::EltwiseParams p = eltwise_params("relu", "x", x);
  return float32_result(x.shape, [&](float* y) { return fastconv::relu_forward(y, x.f32(), p.n); });
}

py::array relu_backward(py::handle dy_obj, py::handle y_obj) {
  const char* op = "relu_backward";
  const ArrayIn dy = float32_array(dy_obj, op, "grad_output", kAnyRank, "");
  const ArrayIn y = float32_array(y_obj, op, "output", kAnyRank, "");
  const fastconv::EltwiseParams p = eltwise_params(op, "grad_output", dy, "output", &y);
  return float32_result(
      y.shape, [&](float* dx) { return fastconv::relu_backward(dx, dy.f32(), y.f32(), p.n); });
}

}  // namespace

void bind_eltwise(py::module_& m) {
  m.def("relu", &relu, py::arg("x"));
  m.def("relu_backward", &relu_backward, py::arg("grad_output"), py::arg("output"));
}

}  // namespace fastconv_py
