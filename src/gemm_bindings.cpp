// pybind11 glue for linear and (for tests and benchmarks) the raw sgemm.
#include <string>

#include "args.h"
#include "fastconv/fma_peak.h"
#include "fastconv/gemm.h"
#include "fastconv/linear.h"
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

// Validated params of a linear call (linear_make_params checks every shape).
fastconv::LinearParams linear_params(const char* op, const ArrayIn& x, const ArrayIn& w,
                                     const ArrayIn* b, const ArrayIn* dy) {
  fastconv::LinearArgs a;
  a.op = op;
  a.x_shape = x.shape;
  a.w_shape[0] = w.shape[0], a.w_shape[1] = w.shape[1];
  if (b != nullptr && b->data != nullptr) a.bias_len = b->shape[0];
  if (dy != nullptr) a.dy_shape = &dy->shape;
  fastconv::LinearParams p;
  throw_if_error(fastconv::linear_make_params(a, &p));
  return p;
}

// x (..., I), weight (O, I), bias (O,) -> y (..., O).
py::array linear(py::handle x_obj, py::handle w_obj, py::handle b_obj) {
  const char* op = "linear";
  const ArrayIn x = float32_array(x_obj, op, "x", kAnyRank, "(..., in_features)");
  const ArrayIn w = float32_array(w_obj, op, "weight", 2, "(out_features, in_features)");
  const ArrayIn b = optional_float32_array(b_obj, op, "bias", 1, "(out_features,)");
  const fastconv::LinearParams p = linear_params(op, x, w, &b, nullptr);
  return float32_result(fastconv::linear_output_shape(x.shape, p.O), [&](float* y) {
    return fastconv::linear_forward(y, x.f32(), w.f32(), b.f32(), p);
  });
}

// Gradients of linear: (dx, dw, db) with None where output_mask is off; dy is
// (..., O) for x (..., I), dx has x's shape.
py::tuple linear_backward(py::handle dy_obj, py::handle x_obj, py::handle w_obj,
                          py::handle mask_obj) {
  const char* op = "linear_backward";
  const ArrayIn x = float32_array(x_obj, op, "x", kAnyRank, "(..., in_features)");
  const ArrayIn w = float32_array(w_obj, op, "weight", 2, "(out_features, in_features)");
  const ArrayIn dy = float32_array(dy_obj, op, "grad_output", kAnyRank, "(..., out_features)");
  const fastconv::LinearParams p = linear_params(op, x, w, nullptr, &dy);
  return float32_grads(
      mask3_arg(mask_obj, op), x.shape, w.shape, {p.O},
      [&](float* dx) { return fastconv::linear_backward_input(dx, dy.f32(), w.f32(), p); },
      [&](float* dw) { return fastconv::linear_backward_weight(dw, dy.f32(), x.f32(), p); },
      [&](float* db) { return fastconv::linear_backward_bias(db, dy.f32(), p); });
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
      throw py::value_error(std::string(op) +
                            ": out must be a writable C-contiguous array of shape " +
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
  call_without_gil([&] {
    return fastconv::sgemm(trans_a ? Trans::kYes : Trans::kNo, trans_b ? Trans::kYes : Trans::kNo,
                           M, N, K, alpha, a.f32(), a.shape[1] > 0 ? a.shape[1] : 1, b.f32(),
                           b.shape[1] > 0 ? b.shape[1] : 1, beta, cp, N > 0 ? N : 1);
  });
  return std::move(c);
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("linear", &linear, py::arg("x"), py::arg("weight"), py::arg("bias"));
  m.def("linear_backward", &linear_backward, py::arg("grad_output"), py::arg("x"),
        py::arg("weight"), py::arg("output_mask"));
  m.def(
      "fma_peak_gflops",
      [](int threads, double seconds) {
        if (threads < 1 || threads > 4096)
          throw py::value_error("fma_peak_gflops: threads must be in [1, 4096], got " +
                                std::to_string(threads));
        if (!(seconds > 0.0 && seconds <= 60.0))  // also refuses NaN
          throw py::value_error("fma_peak_gflops: seconds must be in (0, 60], got " +
                                std::string(py::repr(py::float_(seconds))));
        py::gil_scoped_release release;
        return fastconv::fma_peak_gflops(threads, seconds);
      },
      py::arg("threads"), py::arg("seconds") = 0.3,
      "FP32 FMA peak (GFLOP/s) of the active ISA on that many threads at once.");
  m.def("sgemm", &sgemm, py::arg("a"), py::arg("b"), py::arg("c") = py::none(),
        py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f, py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("out") = py::none());
}

}  // namespace fastconv_py
