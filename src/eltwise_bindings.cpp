// pybind11 glue for the elementwise ops (ReLU forward and backward).
#include <string>

#include "args.h"
#include "fastconv/eltwise.h"

namespace fastconv_py {
namespace {

int64_t count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // an existing array's size fits in int64
  return n;
}

py::array relu(py::handle x_obj) {
  const ArrayIn x = float32_array(x_obj, "relu", "x", kAnyRank, "");
  return float32_result(
      x.shape, [&](float* y) { return fastconv::relu_forward(y, x.f32(), count(x.shape)); });
}

py::array relu_backward(py::handle dy_obj, py::handle y_obj) {
  const char* op = "relu_backward";
  const ArrayIn dy = float32_array(dy_obj, op, "grad_output", kAnyRank, "");
  const ArrayIn y = float32_array(y_obj, op, "output", kAnyRank, "");
  if (dy.shape != y.shape) {
    throw py::value_error(std::string(op) + ": grad_output " + shape_text(dy.shape) +
                          " and output " + shape_text(y.shape) + " must have the same shape");
  }
  return float32_result(y.shape, [&](float* dx) {
    return fastconv::relu_backward(dx, dy.f32(), y.f32(), count(y.shape));
  });
}

}  // namespace

void bind_eltwise(py::module_& m) {
  m.def("relu", &relu, py::arg("x"));
  m.def("relu_backward", &relu_backward, py::arg("grad_output"), py::arg("output"));
}

}  // namespace fastconv_py
