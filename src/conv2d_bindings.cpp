// pybind11 glue for conv2d: parse, build params (conv2d_make_params checks
// them all), allocate, release the GIL, call.
#include <string>

#include "args.h"
#include "fastconv/conv2d.h"

namespace fastconv_py {
namespace {

using fastconv::Conv2dArgs;
using fastconv::Conv2dParams;
using fastconv::ConvAlgo;

// "'auto', 'direct', 'im2col', ..." for messages.
std::string algo_names() {
  std::string s;
  for (ConvAlgo a : fastconv::kConvAlgos) {
    s += std::string(s.empty() ? "'" : ", '") + fastconv::conv_algo_name(a) + "'";
  }
  return s;
}

ConvAlgo algo_arg(py::handle obj, const char* op) {
  if (!py::isinstance<py::str>(obj)) {
    throw py::type_error(std::string(op) + ": algo must be a str, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  const std::string s = obj.cast<std::string>();
  ConvAlgo a;
  if (!fastconv::conv_algo_from_name(s, &a)) {
    throw py::value_error(std::string(op) + ": algo must be one of " + algo_names() + ", got " +
                          std::string(py::repr(obj)));
  }
  return a;
}

// Validated params from the shapes of x and weight (and of bias or
// grad_output, when given) and the Python arguments.
Conv2dParams conv_params(const char* op, const ArrayIn& x, const ArrayIn& w, py::handle stride,
                         py::handle padding, py::handle dilation, py::handle groups,
                         const ArrayIn* b = nullptr, const ArrayIn* dy = nullptr) {
  Conv2dArgs a;
  a.op = op;
  for (int i = 0; i < 4; ++i) {
    a.x_shape[i] = x.shape[i];
    a.w_shape[i] = w.shape[i];
  }
  if (b != nullptr && b->data != nullptr) a.bias_len = b->shape[0];
  if (dy != nullptr) a.dy_shape = dy->shape.data();
  const auto st = pair_arg(stride, op, "stride");
  const auto di = pair_arg(dilation, op, "dilation");
  a.stride[0] = st[0], a.stride[1] = st[1];
  a.dilation[0] = di[0], a.dilation[1] = di[1];
  if (py::isinstance<py::str>(padding)) {
    const std::string s = padding.cast<std::string>();
    if (s == "same") {
      a.padding_same = true;
    } else if (s != "valid") {
      throw py::value_error(std::string(op) +
                            ": padding must be an int, a pair of ints, 'same' or 'valid', got " +
                            std::string(py::repr(padding)));
    }
  } else {
    const auto pa = pair_arg(padding, op, "padding");
    a.padding[0] = pa[0], a.padding[1] = pa[1];
  }
  a.groups = int_arg(groups, op, "groups");
  Conv2dParams p;
  throw_if_error(fastconv::conv2d_make_params(a, &p));
  return p;
}

// activation: None or "relu" (applied as y is stored).
bool activation_arg(py::handle obj, const char* op) {
  if (obj.is_none()) return false;
  if (py::isinstance<py::str>(obj) && obj.cast<std::string>() == "relu") return true;
  throw py::value_error(std::string(op) + ": activation must be None or 'relu', got " +
                        std::string(py::repr(obj)));
}

// A forward convolution's checked arguments.
struct ForwardArgs {
  ArrayIn x, w, b;
  Conv2dParams p;
  ConvAlgo algo;
  bool relu;
};

ForwardArgs forward_args(const char* op, py::handle x_obj, py::handle w_obj, py::handle b_obj,
                         py::handle stride, py::handle padding, py::handle dilation,
                         py::handle groups, py::handle algo_obj, py::handle activation) {
  ForwardArgs a;
  a.x = float32_array(x_obj, op, "x", 4, "(N, C, H, W)");
  a.w = float32_array(w_obj, op, "weight", 4, "(K, C/groups, R, S)");
  a.b = optional_float32_array(b_obj, op, "bias", 1, "(K,)");
  a.p = conv_params(op, a.x, a.w, stride, padding, dilation, groups, &a.b);
  a.algo = algo_arg(algo_obj, op);
  a.relu = activation_arg(activation, op);
  return a;
}

py::array conv2d_forward(py::handle x_obj, py::handle w_obj, py::handle b_obj, py::handle stride,
                         py::handle padding, py::handle dilation, py::handle groups,
                         py::handle algo_obj, py::handle activation) {
  const ForwardArgs a = forward_args("conv2d", x_obj, w_obj, b_obj, stride, padding, dilation,
                                     groups, algo_obj, activation);
  const Conv2dParams& p = a.p;
  return float32_result({p.N, p.K, p.P, p.Q}, [&](float* y) {
    return fastconv::conv2d_forward(y, a.x.f32(), a.w.f32(), a.b.f32(), p, a.algo, a.relu);
  });
}

py::tuple conv2d_backward(py::handle dy_obj, py::handle x_obj, py::handle w_obj, py::handle stride,
                          py::handle padding, py::handle dilation, py::handle groups,
                          py::handle algo_obj, py::handle mask_obj) {
  const char* op = "conv2d_backward";
  const ArrayIn dy = float32_array(dy_obj, op, "grad_output", 4, "(N, K, P, Q)");
  const ArrayIn x = float32_array(x_obj, op, "x", 4, "(N, C, H, W)");
  const ArrayIn w = float32_array(w_obj, op, "weight", 4, "(K, C/groups, R, S)");
  const Conv2dParams p = conv_params(op, x, w, stride, padding, dilation, groups, nullptr, &dy);
  const ConvAlgo algo = algo_arg(algo_obj, op);
  return float32_grads(
      mask3_arg(mask_obj, op), x.shape, w.shape, {p.K},
      [&](float* dx) { return fastconv::conv2d_backward_input(dx, dy.f32(), w.f32(), p, algo); },
      [&](float* dw) { return fastconv::conv2d_backward_weight(dw, dy.f32(), x.f32(), p, algo); },
      [&](float* db) { return fastconv::conv2d_backward_bias(db, dy.f32(), p); });
}

// max_pool2d(conv2d(x, weight, bias, ...) (relu)): the pooled output, and
// the indices when asked, of the two ops one after the other.
py::object conv2d_max_pool2d(py::handle x_obj, py::handle w_obj, py::handle b_obj,
                             py::handle stride, py::handle padding, py::handle dilation,
                             py::handle groups, py::handle algo_obj, py::handle activation,
                             py::handle kernel, py::handle pool_stride, py::handle pool_padding,
                             py::handle pool_dilation, py::handle ceil_mode,
                             py::handle return_indices) {
  const char* op = "conv2d_max_pool2d";
  const ForwardArgs a = forward_args(op, x_obj, w_obj, b_obj, stride, padding, dilation, groups,
                                     algo_obj, activation);
  const Conv2dParams& p = a.p;
  const fastconv::Pool2dParams pool =
      pool_params(op, {p.N, p.K, p.P, p.Q}, kernel, pool_stride, pool_padding, &pool_dilation,
                  ceil_mode, nullptr, nullptr);
  const PoolOutputs out({pool.N, pool.C, pool.P, pool.Q},
                        bool_arg(return_indices, op, "return_indices"));
  call_without_gil([&] {
    return fastconv::conv2d_forward_max_pool2d(out.y_data, out.indices_data, a.x.f32(), a.w.f32(),
                                               a.b.f32(), p, a.algo, a.relu, pool);
  });
  return out.result();
}

// The algorithm "auto" resolves to for one pass of a conv2d call.
std::string conv2d_choose_algo(const std::string& pass, py::handle x_shape, py::handle w_shape,
                               py::handle stride, py::handle padding, py::handle dilation,
                               py::handle groups) {
  const char* op = "conv2d_choose_algo";
  fastconv::ConvPass cp;
  if (pass == "forward") {
    cp = fastconv::ConvPass::kForward;
  } else if (pass == "backward_input") {
    cp = fastconv::ConvPass::kBackwardInput;
  } else if (pass == "backward_weight") {
    cp = fastconv::ConvPass::kBackwardWeight;
  } else {
    throw py::value_error(std::string(op) +
                          ": pass must be 'forward', 'backward_input' or "
                          "'backward_weight', got '" +
                          pass + "'");
  }
  ArrayIn x, w;
  x.shape = shape_arg(x_shape, op, "x_shape", 4);
  w.shape = shape_arg(w_shape, op, "w_shape", 4);
  const Conv2dParams p = conv_params(op, x, w, stride, padding, dilation, groups);
  return fastconv::conv_algo_name(fastconv::conv2d_choose_algo(cp, p));
}

}  // namespace

void bind_conv2d(py::module_& m) {
  m.def(
      "conv_algos",
      [] {
        py::list out;
        for (ConvAlgo a : fastconv::kConvAlgos) out.append(fastconv::conv_algo_name(a));
        return out;
      },
      "Every conv2d algorithm name, 'auto' first.");
  m.def("conv2d_choose_algo", &conv2d_choose_algo, py::arg("pass_"), py::arg("x_shape"),
        py::arg("w_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"));
  m.def("conv2d_forward", &conv2d_forward, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("algo"), py::arg("activation") = py::none());
  m.def("conv2d_max_pool2d", &conv2d_max_pool2d, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("algo"), py::arg("activation"), py::arg("kernel_size"), py::arg("pool_stride"),
        py::arg("pool_padding"), py::arg("pool_dilation"), py::arg("ceil_mode"),
        py::arg("return_indices"));
  m.def("conv2d_backward", &conv2d_backward, py::arg("grad_output"), py::arg("x"),
        py::arg("weight"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"), py::arg("algo"), py::arg("output_mask"));
}

}  // namespace fastconv_py
