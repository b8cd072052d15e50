#include "args.h"

#include <string>

namespace fastconv_py {
namespace {

std::string type_name(py::handle obj) { return py::str(py::type::of(obj).attr("__name__")); }

[[noreturn]] void type_error(const std::string& m) { throw py::type_error(m); }
[[noreturn]] void value_error(const std::string& m) { throw py::value_error(m); }

bool is_native_order(const py::dtype& dt) {
  const char bo = dt.byteorder();
  return bo == '=' || bo == '|' ||
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
         bo == '<';
#else
         bo == '>';
#endif
}

ArrayIn as_kernel_array(py::handle obj, const char* op, const char* name, int ndim,
                        const char* ndim_text, char kind, int itemsize, const char* dtype_name) {
  if (!py::isinstance<py::array>(obj)) {
    type_error(std::string(op) + ": " + name + " must be a numpy.ndarray of " + dtype_name +
               ", got " + type_name(obj));
  }
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  const py::dtype dt = arr.dtype();
  if (dt.kind() != kind || dt.itemsize() != itemsize) {
    type_error(std::string(op) + ": " + name + " must have dtype " + dtype_name + ", got " +
               std::string(py::str(dt)) + " (fastconv never casts silently; use .astype(np." +
               dtype_name + "))");
  }
  if (ndim != kAnyRank && arr.ndim() != ndim) {
    std::vector<int64_t> shape(arr.shape(), arr.shape() + arr.ndim());
    value_error(std::string(op) + ": " + name + " must be " + std::to_string(ndim) + "-D " +
                ndim_text + ", got shape " + shape_text(shape));
  }
  const int flags = arr.flags();
  const bool ok = (flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) &&
                  (flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_) && is_native_order(dt);
  if (!ok) {
    // A fresh copy is always C-contiguous, aligned and in native byte order.
    arr = py::module_::import("numpy").attr("array")(
        arr, py::arg("dtype") = dtype_name, py::arg("order") = "C", py::arg("copy") = true);
  }
  ArrayIn in;
  in.shape.assign(arr.shape(), arr.shape() + arr.ndim());
  in.data = arr.data();
  in.arr = std::move(arr);
  return in;
}

}  // namespace

std::string shape_text(const std::vector<int64_t>& shape) { return fastconv::shape_str(shape); }

ArrayIn float32_array(py::handle obj, const char* op, const char* name, int ndim,
                      const char* ndim_text) {
  return as_kernel_array(obj, op, name, ndim, ndim_text, 'f', 4, "float32");
}

ArrayIn optional_float32_array(py::handle obj, const char* op, const char* name, int ndim,
                               const char* ndim_text) {
  if (obj.is_none()) return ArrayIn{};
  return float32_array(obj, op, name, ndim, ndim_text);
}

ArrayIn int64_array(py::handle obj, const char* op, const char* name, int ndim,
                    const char* ndim_text) {
  return as_kernel_array(obj, op, name, ndim, ndim_text, 'i', 8, "int64");
}

int64_t int_arg(py::handle obj, const char* op, const char* name) {
  const bool is_bool =
      PyBool_Check(obj.ptr()) || py::isinstance(obj, py::module_::import("numpy").attr("bool_"));
  const bool is_int =
      PyLong_Check(obj.ptr()) || py::isinstance(obj, py::module_::import("numpy").attr("integer"));
  if (is_bool || !is_int) {
    type_error(std::string(op) + ": " + name + " must be an int, got " + type_name(obj) + " " +
               std::string(py::repr(obj)));
  }
  py::object as_long = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!as_long) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(as_long.ptr(), &overflow);
  if (overflow != 0) {
    value_error(std::string(op) + ": " + name + " = " + std::string(py::repr(obj)) +
                " does not fit in int64");
  }
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return static_cast<int64_t>(v);
}

std::array<int64_t, 2> pair_arg(py::handle obj, const char* op, const char* name) {
  if (PyTuple_Check(obj.ptr()) || PyList_Check(obj.ptr())) {
    py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
    if (seq.size() != 2) {
      value_error(std::string(op) + ": " + name + " must be an int or a pair of ints, got " +
                  std::string(py::repr(obj)) + " of length " + std::to_string(seq.size()));
    }
    return {int_arg(seq[0], op, name), int_arg(seq[1], op, name)};
  }
  const int64_t v = int_arg(obj, op, name);
  return {v, v};
}

bool bool_arg(py::handle obj, const char* op, const char* name) {
  if (PyBool_Check(obj.ptr())) return obj.ptr() == Py_True;
  if (py::isinstance(obj, py::module_::import("numpy").attr("bool_"))) return obj.cast<bool>();
  type_error(std::string(op) + ": " + name + " must be a bool, got " + type_name(obj));
}

std::vector<int64_t> shape_arg(py::handle obj, const char* op, const char* name, size_t n) {
  if (!(PyTuple_Check(obj.ptr()) || PyList_Check(obj.ptr()))) {
    type_error(std::string(op) + ": " + name + " must be a tuple of " + std::to_string(n) +
               " ints, got " + type_name(obj));
  }
  py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  if (seq.size() != n) {
    value_error(std::string(op) + ": " + name + " must have " + std::to_string(n) +
                " entries, got " + std::string(py::repr(obj)));
  }
  std::vector<int64_t> out;
  for (size_t i = 0; i < n; ++i) out.push_back(int_arg(seq[i], op, name));
  return out;
}

std::array<bool, 3> mask3_arg(py::handle obj, const char* op) {
  if (!(PyTuple_Check(obj.ptr()) || PyList_Check(obj.ptr())) || py::len(obj) != 3)
    type_error(std::string(op) + ": output_mask must be a tuple of 3 bools");
  py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  return {bool_arg(seq[0], op, "output_mask"), bool_arg(seq[1], op, "output_mask"),
          bool_arg(seq[2], op, "output_mask")};
}

void throw_if_error(const fastconv::Status& st) {
  using fastconv::StatusCode;
  switch (st.code()) {
    case StatusCode::kOk: return;
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange: throw py::value_error(st.message());
    case StatusCode::kOutOfMemory: PyErr_SetString(PyExc_MemoryError, st.message().c_str()); break;
    case StatusCode::kInterrupted:
      // The poll ran Python's signal handler, which set the exception.
      if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
      break;
    case StatusCode::kUnsupported: throw std::runtime_error(st.message());
  }
  throw py::error_already_set();
}

}  // namespace fastconv_py
