// fastconv._core: the pybind11 module. Chooses the kernel ISA once, at
// import (FASTCONV_ISA may force a level), then binds the op families.
#include <pybind11/stl.h>

#include <string>

#include "args.h"
#include "fastconv/conv2d.h"
#include "fastconv/dispatch.h"
#include "fastconv/enum_names.h"
#include "fastconv/gemm.h"
#include "fastconv/kernel_names.h"
#include "fastconv/threading.h"
#include "outputs.h"

#ifndef FASTCONV_VERSION
#define FASTCONV_VERSION "0+unknown"
#endif

namespace fastconv_py {

void bind_conv2d(py::module_& m);
void bind_pool2d(py::module_& m);
void bind_gemm(py::module_& m);
void bind_eltwise(py::module_& m);

namespace {

py::dict build_info() {
  using namespace fastconv;
  py::list compiled;
  for (Isa isa : kIsas)
    if (isa_compiled(isa)) compiled.append(isa_name(isa));
  py::dict d;
  d["version"] = FASTCONV_VERSION;
  d["isas_compiled"] = compiled;
  d["isa_detected"] = isa_name(isa_detected());
  d["isa_active"] = isa_name(isa_active());
  d["openmp"] = openmp_enabled();
  d["openmp_runtime"] = openmp_runtime();
#ifdef _OPENMP
  d["openmp_version"] = _OPENMP;
#else
  d["openmp_version"] = 0;
#endif
  d["num_threads"] = get_num_threads();
  const GemmBlocking gb = gemm_blocking();
  py::dict g;
  g["ukernel"] = kernel_variant("sgemm_ukernel");
  g["mr"] = gb.mr;
  g["nr"] = gb.nr;
  g["mc"] = gb.mc;
  g["kc"] = gb.kc;
  g["nc"] = gb.nc;
  d["gemm"] = g;
  return d;
}

// Interrupt poll for long calls: Python runs signal handlers on the main
// thread only, so only the main thread checks; it takes the GIL briefly (at
// most every kInterruptPollMs) and lets Python's handler raise, e.g.
// KeyboardInterrupt, which the binding then re-raises.
unsigned long g_main_thread = 0;
bool python_interrupt_poll() {
  if (PyThread_get_thread_ident() != g_main_thread) return false;
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

// The registry's entries in order: base names, or full variant names for
// the active ISA.
py::list kernel_names() {
  py::list out;
  for (int i = 0; i < fastconv::kernel_count(); ++i) out.append(fastconv::kernel_name(i));
  return out;
}
py::list kernel_variants() {
  py::list out;
  for (int i = 0; i < fastconv::kernel_count(); ++i) out.append(fastconv::kernel_variant(i));
  return out;
}

// show_config()["kernels"]: what each op runs on the active ISA.
py::dict op_kernels() {
  py::dict d;
  for (const auto& [op, kernel] : fastconv::op_kernels()) d[py::str(op)] = kernel;
  return d;
}

}  // namespace
}  // namespace fastconv_py

PYBIND11_MODULE(_core, m) {
  namespace py = pybind11;
  using namespace fastconv_py;
  m.doc() = "fastconv's C++ kernels. Use the fastconv package, not this module.";
  throw_if_error(fastconv::isa_init_from_env());
  g_main_thread =
      py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  fastconv::set_interrupt_poll(&python_interrupt_poll);
  m.attr("__version__") = FASTCONV_VERSION;

  m.def(
      "set_num_threads",
      [](py::handle n) {
        const int64_t v = int_arg(n, "set_num_threads", "n");
        if (v < 1 || v > 4096)
          throw py::value_error("set_num_threads: n must be in [1, 4096], got " +
                                std::to_string(v));
        fastconv::set_num_threads(static_cast<int>(v));
      },
      py::arg("n"));
  m.def("get_num_threads", &fastconv::get_num_threads);
  m.def("build_info", &build_info);
  m.def(
      "release_workspace",
      [] {
        py::gil_scoped_release release;
        fastconv::release_workspaces();
      },
      "Free the kept workspaces (of the calling thread and the OpenMP workers).");
  m.def(
      "workspace_bytes",
      [] {
        const fastconv::WorkspaceBytes b = fastconv::workspace_bytes();
        py::dict d;
        d["current"] = b.current;
        d["peak"] = b.peak;
        return d;
      },
      "Bytes in workspaces now and at most since _reset_workspace_peak().");
  m.def("_reset_workspace_peak", &fastconv::reset_workspace_peak);
  m.def(
      "_contention_state",
      [] {
        const fastconv::ContentionState s = fastconv::contention_state();
        py::dict d;
        d["solo_for_ms"] = s.solo_for_ns / 1e6;
        d["backoff_ms"] = s.backoff_ns / 1e6;
        d["episodes"] = s.episodes;
        return d;
      },
      "Benchmarks and tests: whether regions run on one thread now because of contention.");
  m.def(
      "_set_adaptive_threads", [](bool on) { fastconv::set_adaptive_threads(on); }, py::arg("on"),
      "Tests and benchmarks: switch the contention fallback (on by default).");
  m.def("kernel_names", &kernel_names, "The registry's kernels in order, without the ISA suffix.");
  m.def("kernel_variants", &kernel_variants,
        "The registry's kernels in order, full variant names for the active ISA.");
  m.def("op_kernels", &op_kernels, "For each op, the kernel variant it runs on the active ISA.");
  m.def(
      "_set_isa",
      [](const std::string& name) {
        fastconv::Isa isa;
        if (!fastconv::isa_from_name(name, &isa))
          throw py::value_error(
              "unknown ISA '" + name + "'; expected " +
              fastconv::enum_name_list(fastconv::kIsas, fastconv::isa_name, " or "));
        throw_if_error(fastconv::isa_force(isa));
      },
      py::arg("name"), "Switch the kernel ISA (for tests; not while other threads run kernels).");

  m.def(
      "_set_output_fill",
      [](py::object value) {
        if (value.is_none()) {
          set_output_fill(false, 0.0f);
        } else {
          set_output_fill(true, value.cast<float>());
        }
      },
      py::arg("value"), "Tests: pre-fill every new output with value (None: off).");

  m.def(
      "_set_interrupt_poll_ms",
      [](int ms) {
        if (ms < 1 || ms > 60000)
          throw py::value_error("_set_interrupt_poll_ms: ms must be in [1, 60000]");
        fastconv::set_interrupt_poll_interval_ms(ms);
      },
      py::arg("ms"), "Tests: poll for signals every ms milliseconds during an op (default 20).");

  m.def(
      "_set_output_guard", [](int64_t guard) { set_output_guard(guard); }, py::arg("guard"),
      "Tests: place every new output inside guard sentinels (0: off); see outputs.h.");

  bind_conv2d(m);
  bind_pool2d(m);
  bind_gemm(m);
  bind_eltwise(m);
}
