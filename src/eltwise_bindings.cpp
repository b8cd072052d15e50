// pybind11 glue for the elementwise ops (ReLU forward and backward).
#include <string>

#include "args.h"
#include "fastconv/eltwise.h"

namespace fastconv_py {
namespace {

// A float32 array of any rank (0-d included).
ArrayIn any_float32(py::handle obj, const char* op, const char* name) {
  if (!py::isinstance<py::array>(obj)) return float32_array(obj, op, name, 1, "");
  const int ndim = py::reinterpret_borrow<py::array>(obj).ndim();
  return float32_array(obj, op, name, ndim, "");
}

int64_t count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // an existing array's size fits in int64
  return n;
}

py::array relu(py::handle x_obj) {
  const ArrayIn x = any_float32(x_obj, "relu", "x");
  py::array_t<float> y = new_float32(x.shape);
  float* yp = y.mutable_data();
  fastconv::Status st;
  {
    py::gil_scoped_release release;
    st = fastconv::relu_forward(yp, x.f32(), count(x.shape));
  }
  throw_if_error(st);
  return std::move(y);
}

py::array relu_backward(py::handle dy_obj, py::handle y_obj) {
  const char* op = "relu_backward";
  const ArrayIn dy = any_float32(dy_obj, op, "grad_output");
  const ArrayIn y = any_float32(y_obj, op, "output");
  if (dy.shape != y.shape) {
    throw py::value_error(std::string(op) + ": grad_output " + shape_text(dy.shape) +
                          " and output " + shape_text(y.shape) + " must have the same shape");
  }
  py::array_t<float> dx = new_float32(y.shape);
  float* dxp = dx.mutable_data();
  fastconv::Status st;
  {
    py::gil_scoped_release release;
    st = fastconv::relu_backward(dxp, dy.f32(), y.f32(), count(y.shape));
  }
  throw_if_error(st);
  return std::move(dx);
}

}  // namespace

void bind_eltwise(py::module_& m) {
  m.def("relu", &relu, py::arg("x"));
  m.def("relu_backward", &relu_backward, py::arg("grad_output"), py::arg("output"));
}

}  // namespace fastconv_py
