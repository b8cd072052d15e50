// Argument parsing shared by the bindings: arrays taken without silent
// conversion, strict integer and pair parsing, and the translation of a
// fastconv::Status into a Python exception. Bindings only parse: every check
// of shapes and values is in the *_make_params of the op family
// (fastconv/shapes.h). Outputs are allocated through outputs.h.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "fastconv/shapes.h"
#include "fastconv/status.h"
#include "outputs.h"  // every binding allocates outputs; module.cpp sets their test hooks

namespace fastconv_py {

namespace py = pybind11;

// A float32 (or int64) input as the kernels need it: C-contiguous, aligned,
// native byte order. Arrays that are not (views, negative or zero strides,
// Fortran order, '>f4', misaligned) are copied; the caller's array is never
// written. `shape` comes from the array's dimensions, never from strides.
struct ArrayIn {
  py::array arr;  // keeps the (possibly copied) data alive
  std::vector<int64_t> shape;
  const void* data = nullptr;
  const float* f32() const { return static_cast<const float*>(data); }
  const int64_t* i64() const { return static_cast<const int64_t*>(data); }
};

// Any number of dimensions, for float32_array's `ndim` (relu, linear's x).
constexpr int kAnyRank = -1;

// TypeError unless `obj` is a numpy.ndarray of float32; ValueError unless it
// has `ndim` dimensions (`ndim_text` describes them, e.g. "(N, C, H, W)").
ArrayIn float32_array(py::handle obj, const char* op, const char* name, int ndim,
                      const char* ndim_text);
// The same for an optional argument: null data for None.
ArrayIn optional_float32_array(py::handle obj, const char* op, const char* name, int ndim,
                               const char* ndim_text);
// TypeError unless an int64 ndarray.
ArrayIn int64_array(py::handle obj, const char* op, const char* name, int ndim,
                    const char* ndim_text);

// A Python int (or numpy integer); TypeError for bool, float, str, ...;
// ValueError if it does not fit in int64.
int64_t int_arg(py::handle obj, const char* op, const char* name);
// An int (used for both) or a sequence of exactly two ints.
std::array<int64_t, 2> pair_arg(py::handle obj, const char* op, const char* name);
// A Python bool (or numpy bool); TypeError otherwise.
bool bool_arg(py::handle obj, const char* op, const char* name);
// A sequence of exactly n ints (a shape).
std::vector<int64_t> shape_arg(py::handle obj, const char* op, const char* name, size_t n);

// output_mask of a backward op: a tuple or list of exactly 3 bools.
std::array<bool, 3> mask3_arg(py::handle obj, const char* op);

// Raises the Python exception matching a failed status.
void throw_if_error(const fastconv::Status& st);

std::string shape_text(const std::vector<int64_t>& shape);

// Validated pooling params for input shape x_shape from the Python arguments
// (pool2d_bindings.cpp); nullptr for the arguments the op does not have
// (dy_shape: grad_output's shape, for avg_pool2d_backward).
fastconv::Pool2dParams pool_params(const char* op, const std::vector<int64_t>& x_shape,
                                   py::handle kernel, py::handle stride, py::handle padding,
                                   const py::handle* dilation, py::handle ceil_mode,
                                   const py::handle* count_include_pad,
                                   const py::handle* divisor_override,
                                   const std::vector<int64_t>* dy_shape = nullptr);

// Calling a kernel: `call()` returns a fastconv::Status and runs without the
// GIL (it may use only data pointers taken before); a failed Status becomes
// the Python exception.
template <class Call>
void call_without_gil(Call&& call) {
  fastconv::Status st;
  {
    py::gil_scoped_release release;
    st = call();
  }
  throw_if_error(st);
}

// A new float32 array of `shape` that `kernel(float* out)` fills.
template <class Kernel>
py::array float32_result(const std::vector<int64_t>& shape, Kernel&& kernel) {
  py::array_t<float> y = new_float32(shape);
  float* yp = y.mutable_data();
  call_without_gil([&] { return kernel(yp); });
  return std::move(y);
}

// The (d0, d1, d2) gradients of a backward pass: where want[i], a new float32
// array of shape s<i> that grad<i>(float* out) fills, else None. The kernels
// run in order and stop at the first failure.
template <class Grad0, class Grad1, class Grad2>
py::tuple float32_grads(const std::array<bool, 3>& want, const std::vector<int64_t>& s0,
                        const std::vector<int64_t>& s1, const std::vector<int64_t>& s2,
                        Grad0&& grad0, Grad1&& grad1, Grad2&& grad2) {
  float *d0, *d1, *d2;
  py::object o0 = maybe_new_float32(want[0], s0, &d0);
  py::object o1 = maybe_new_float32(want[1], s1, &d1);
  py::object o2 = maybe_new_float32(want[2], s2, &d2);
  call_without_gil([&] {
    fastconv::Status st;
    if (d0) st = grad0(d0);
    if (st.ok() && d1) st = grad1(d1);
    if (st.ok() && d2) st = grad2(d2);
    return st;
  });
  return py::make_tuple(o0, o1, o2);
}

}  // namespace fastconv_py
