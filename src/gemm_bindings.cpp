// pybind11 glue for linear and (for tests and benchmarks) the raw sgemm.
#include <string>

#include "args.h"
#include "fastconv/gemm.h"
#include "fastconv/shapes.h"

namespace fastconv_py {
namespace {

using fastconv::Trans;

// True when the byte ranges of two arrays overlap.
bool overlaps(const py::array& a, const py::array& b) {
  const char* pa = static_cast<const char*>(a.data());
  const char* pb = static_cast<const char*>(b.data());
  return a.nbytes() > 0 && b.nbytes() > 0 && pa < pb + b.nbytes() && pb < pa + a.nbytes();
}

// An input the kernel reads while it writes `out`: when the two share memory
// (sgemm(a, b, out=b)), the input is read from a copy, as numpy.matmul does.
ArrayIn unaliased(ArrayIn in, const py::array& out) {
  if (in.data == nullptr || !overlaps(in.arr, out)) return in;
  in.arr = py::reinterpret_steal<py::array>(in.arr.attr("copy")().release());
  in.data = in.arr.data();
  return in;
}

// x (..., I), weight (O, I), bias (O,) -> y (..., O).
py::array linear(py::handle x_obj, py::handle w_obj, py::handle b_obj) {
  const char* op = "linear";
  if (!py::isinstance<py::array>(x_obj)) float32_array(x_obj, op, "x", 2, "(B, in_features)");
  const int x_ndim = py::reinterpret_borrow<py::array>(x_obj).ndim();
  if (x_ndim < 1) {
    throw py::value_error(std::string(op) + ": x must have at least 1 dimension (..., in_features)");
  }
  const ArrayIn x = float32_array(x_obj, op, "x", x_ndim, "(..., in_features)");
  const ArrayIn w = float32_array(w_obj, op, "weight", 2, "(out_features, in_features)");
  const ArrayIn b = optional_float32_array(b_obj, op, "bias", 1, "(out_features,)");
  const int64_t in = x.shape.back(), out = w.shape[0];
  if (w.shape[1] != in) {
    throw py::value_error(std::string(op) + ": x " + shape_text(x.shape) + " has in_features=" +
                          std::to_string(in) + " but weight " + shape_text(w.shape) +
                          " expects " + std::to_string(w.shape[1]));
  }
  if (b.data != nullptr && b.shape[0] != out) {
    throw py::value_error(std::string(op) + ": bias must have shape (out_features,) = (" +
                          std::to_string(out) + ",), got " + shape_text(b.shape));
  }
  int64_t batch = 1;
  for (int i = 0; i + 1 < x_ndim; ++i) {
    if (!fastconv::checked_mul(batch, x.shape[i], &batch))
      throw py::value_error(std::string(op) + ": x " + shape_text(x.shape) + " is too large");
  }
  std::vector<int64_t> y_shape(x.shape.begin(), x.shape.end() - 1);
  y_shape.push_back(out);
  int64_t y_count;
  if (!fastconv::checked_product(y_shape.data(), static_cast<int>(y_shape.size()), &y_count))
    throw py::value_error(std::string(op) + ": output " + shape_text(y_shape) + " is too large");
  py::array_t<float> y = new_float32(y_shape);
  float* yp = y.mutable_data();
  fastconv::Status st;
  {
    py::gil_scoped_release release;
    st = fastconv::linear_forward(yp, x.f32(), w.f32(), b.f32(), batch, in, out);
  }
  throw_if_error(st);
  return std::move(y);
}

// Gradients of linear: (dx, dw, db) with None where output_mask is off.
py::tuple linear_backward(py::handle dy_obj, py::handle x_obj, py::handle w_obj,
                          py::handle mask_obj) {
  const char* op = "linear_backward";
  if (!py::isinstance<py::array>(x_obj)) float32_array(x_obj, op, "x", 2, "(B, in_features)");
  const int x_ndim = py::reinterpret_borrow<py::array>(x_obj).ndim();
  if (x_ndim < 1) throw py::value_error(std::string(op) + ": x must have at least 1 dimension");
  const ArrayIn x = float32_array(x_obj, op, "x", x_ndim, "(..., in_features)");
  const ArrayIn w = float32_array(w_obj, op, "weight", 2, "(out_features, in_features)");
  const int64_t in = x.shape.back(), out = w.shape[0];
  if (w.shape[1] != in) {
    throw py::value_error(std::string(op) + ": x " + shape_text(x.shape) + " has in_features=" +
                          std::to_string(in) + " but weight " + shape_text(w.shape) +
                          " expects " + std::to_string(w.shape[1]));
  }
  std::vector<int64_t> y_shape(x.shape.begin(), x.shape.end() - 1);
  y_shape.push_back(out);
  const ArrayIn dy = float32_array(dy_obj, op, "grad_output", x_ndim, "(..., out_features)");
  if (dy.shape != y_shape) {
    throw py::value_error(std::string(op) + ": grad_output has shape " + shape_text(dy.shape) +
                          " but the forward output has shape " + shape_text(y_shape));
  }
  const auto want = mask3_arg(mask_obj, op);
  int64_t batch = 1;
  for (int i = 0; i + 1 < x_ndim; ++i) batch *= x.shape[i];  // x exists: fits in int64
  float *dxp, *dwp, *dbp;
  py::object dx = maybe_new_float32(want[0], x.shape, &dxp);
  py::object dw = maybe_new_float32(want[1], w.shape, &dwp);
  py::object db = maybe_new_float32(want[2], {out}, &dbp);
  fastconv::Status st;
  {
    py::gil_scoped_release release;
    if (dxp) st = fastconv::linear_backward_input(dxp, dy.f32(), w.f32(), batch, in, out);
    if (st.ok() && dwp) st = fastconv::linear_backward_weight(dwp, dy.f32(), x.f32(), batch, in, out);
    if (st.ok() && dbp) st = fastconv::linear_backward_bias(dbp, dy.f32(), batch, out);
  }
  throw_if_error(st);
  return py::make_tuple(dx, dw, db);
}

// Returns alpha * op(a) @ op(b) + beta * c. The result is a new array (c is
// not written), or `out` when given: a writable C-contiguous float32 (M, N)
// array that is overwritten in place (beta * out when c is None), so that
// benchmarks can reuse one output like numpy.matmul(..., out=).
py::array sgemm(py::handle a_obj, py::handle b_obj, py::handle c_obj, float alpha, float beta,
                bool trans_a, bool trans_b, py::handle out_obj) {
  const char* op = "sgemm";
  ArrayIn a = float32_array(a_obj, op, "a", 2, "(rows, cols)");
  ArrayIn b = float32_array(b_obj, op, "b", 2, "(rows, cols)");
  const int64_t M = trans_a ? a.shape[1] : a.shape[0], K = trans_a ? a.shape[0] : a.shape[1];
  const int64_t Kb = trans_b ? b.shape[1] : b.shape[0], N = trans_b ? b.shape[0] : b.shape[1];
  if (K != Kb) {
    throw py::value_error(std::string(op) + ": op(a) is " + std::to_string(M) + "x" +
                          std::to_string(K) + " but op(b) is " + std::to_string(Kb) + "x" +
                          std::to_string(N));
  }
  py::array_t<float> c;
  if (out_obj.is_none()) {
    c = new_float32({M, N});
  } else {
    if (!py::isinstance<py::array_t<float>>(out_obj))
      throw py::type_error(std::string(op) + ": out must be a float32 numpy.ndarray");
    c = py::reinterpret_borrow<py::array_t<float>>(out_obj);
    const bool ok = c.ndim() == 2 && c.shape(0) == M && c.shape(1) == N && c.writeable() &&
                    (c.flags() & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) &&
                    (c.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) &&
                    c.dtype().byteorder() != '>';
    if (!ok) {
      throw py::value_error(std::string(op) + ": out must be a writable C-contiguous array of shape " +
                            shape_text({M, N}));
    }
  }
  a = unaliased(std::move(a), c);
  b = unaliased(std::move(b), c);
  float* cp = c.mutable_data();
  if (!c_obj.is_none()) {
    const ArrayIn c_in = float32_array(c_obj, op, "c", 2, "(M, N)");
    if (c_in.shape != std::vector<int64_t>{M, N})
      throw py::value_error(std::string(op) + ": c must have shape " + shape_text({M, N}));
    // c is out itself (nothing to copy), or memory apart from it, or a view
    // overlapping it (copied before out is written).
    if (c_in.f32() != cp) {
      const ArrayIn c_src = unaliased(c_in, c);
      std::copy(c_src.f32(), c_src.f32() + M * N, cp);
    }
  } else if (beta != 0.0f && out_obj.is_none()) {
    throw py::value_error(std::string(op) + ": beta != 0 needs c");
  }
  fastconv::Status st;
  {
    py::gil_scoped_release release;
    st = fastconv::sgemm(trans_a ? Trans::kYes : Trans::kNo, trans_b ? Trans::kYes : Trans::kNo,
                         M, N, K, alpha, a.f32(), a.shape[1] > 0 ? a.shape[1] : 1, b.f32(),
                         b.shape[1] > 0 ? b.shape[1] : 1, beta, cp, N > 0 ? N : 1);
  }
  throw_if_error(st);
  return std::move(c);
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("linear", &linear, py::arg("x"), py::arg("weight"), py::arg("bias"));
  m.def("linear_backward", &linear_backward, py::arg("grad_output"), py::arg("x"),
        py::arg("weight"), py::arg("output_mask"));
  m.def("fma_peak_gflops", [](int threads, double seconds) {
    if (threads < 1 || threads > 4096)
      throw py::value_error("fma_peak_gflops: threads must be in [1, 4096], got " + std::to_string(threads));
    if (!(seconds > 0.0 && seconds <= 60.0))  // also refuses NaN
      throw py::value_error("fma_peak_gflops: seconds must be in (0, 60], got " +
                            std::string(py::repr(py::float_(seconds))));
    py::gil_scoped_release release;
    return fastconv::fma_peak_gflops(threads, seconds);
  }, py::arg("threads"), py::arg("seconds") = 0.3,
     "FP32 FMA peak (GFLOP/s) of the active ISA on that many threads at once.");
  m.def("sgemm", &sgemm, py::arg("a"), py::arg("b"), py::arg("c") = py::none(),
        py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f, py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("out") = py::none());
}

}  // namespace fastconv_py
