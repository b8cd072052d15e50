// Output arrays of the bindings: every array a binding returns is allocated
// here. Large outputs come from a cache of recycled blocks (see outputs.cpp);
// tests can pre-fill outputs (set_output_fill) or surround them with guard
// sentinels (set_output_guard).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

namespace fastconv_py {

namespace py = pybind11;

// A new C-contiguous float32 / int64 array of the given shape. Its contents
// are unspecified (kernels overwrite every element) unless a test has set a
// fill value with set_output_fill: then float32 outputs start as that value
// (NaN proves a kernel never reads what it must overwrite) and int64 outputs
// as -1.
void set_output_fill(bool enabled, float value);
// Tests: when guard > 0, every new output is a view into a larger array with
// `guard` sentinel elements on each side (float32: NaN with payload 0x7fc0dead
// as bits; int64: 0x5a5a5a5a5a5a5a5a), reachable as the output's .base, so a
// test can prove that no kernel writes outside its output.
void set_output_guard(int64_t guard);
py::array_t<float> new_float32(const std::vector<int64_t>& shape);
py::array_t<int64_t> new_int64(const std::vector<int64_t>& shape);

// A new float32 output of `shape` when `want` (its data pointer in *data),
// else None (and *data = nullptr).
py::object maybe_new_float32(bool want, const std::vector<int64_t>& shape, float** data);

// A max pool's outputs: y (float32) and, when asked, the indices (int64),
// both of `shape`; result() is what the Python call returns, y or (y, indices).
struct PoolOutputs {
  PoolOutputs(const std::vector<int64_t>& shape, bool want_indices);
  py::array_t<float> y;
  py::object indices = py::none();
  float* y_data = nullptr;
  int64_t* indices_data = nullptr;  // null when not asked
  py::object result() const;
};

}  // namespace fastconv_py
