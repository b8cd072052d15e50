#include "args.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <climits>
#include <cstring>

#include "fastconv/shapes.h"

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
  if (arr.ndim() != ndim) {
    std::vector<int64_t> shape(arr.shape(), arr.shape() + arr.ndim());
    value_error(std::string(op) + ": " + name + " must be " + std::to_string(ndim) + "-D " +
                ndim_text + ", got shape " + shape_text(shape));
  }
  const int flags = arr.flags();
  const bool ok = (flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) &&
                  (flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_) && is_native_order(dt);
  if (!ok) {
    // A fresh copy is always C-contiguous, aligned and in native byte order.
    arr = py::module_::import("numpy").attr("array")(arr, py::arg("dtype") = dtype_name,
                                                      py::arg("order") = "C",
                                                      py::arg("copy") = true);
  }
  ArrayIn in;
  in.shape.assign(arr.shape(), arr.shape() + arr.ndim());
  in.data = arr.data();
  in.arr = std::move(arr);
  return in;
}

}  // namespace

std::string shape_text(const std::vector<int64_t>& shape) {
  return fastconv::shape_str(shape.data(), static_cast<int>(shape.size()));
}

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
  const bool is_bool = PyBool_Check(obj.ptr()) ||
                       py::isinstance(obj, py::module_::import("numpy").attr("bool_"));
  const bool is_int = PyLong_Check(obj.ptr()) ||
                      py::isinstance(obj, py::module_::import("numpy").attr("integer"));
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

namespace {

// Output buffers kept across calls. A training step allocates the same
// output sizes every time; with glibc's malloc, large freed blocks go back
// to the OS and the next step's outputs page-fault on first write (~1.5 us
// per 4 KiB here: ~13 ms of a 48 ms Keras-CNN step at batch 128). Outputs of
// at least kMinBytes come from this cache instead: an array's block returns
// here when the array is freed (through the capsule that owns it), and the
// next output of the same size reuses it. At most FASTCONV_OUTPUT_CACHE_MB
// (default 512) MiB are kept; blocks beyond that are freed.
class OutputCache {
 public:
  static constexpr size_t kMinBytes = 256 * 1024;
  static constexpr size_t kHeader = 64;  // the block's size, before the data (keeps alignment)

  OutputCache() {
    const char* env = std::getenv("FASTCONV_OUTPUT_CACHE_MB");
    limit_ = (env ? static_cast<size_t>(std::strtoull(env, nullptr, 10)) : 512) << 20;
  }
  // The data pointer of a block of `bytes` (reused or new), or null.
  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        char* block = it->second.back();
        it->second.pop_back();
        cached_ -= bytes;
        return block + kHeader;
      }
    }
    void* block = nullptr;
    if (posix_memalign(&block, 64, kHeader + bytes) != 0) return nullptr;
    *static_cast<size_t*>(block) = bytes;
    return static_cast<char*>(block) + kHeader;
  }
  // Returns the block of a data pointer from take().
  void give(void* data) {
    char* block = static_cast<char*>(data) - kHeader;
    const size_t bytes = *reinterpret_cast<size_t*>(block);
    try {  // called from a capsule's destructor: nothing may escape
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + bytes <= limit_) {
        free_[bytes].push_back(block);
        cached_ += bytes;
        return;
      }
    } catch (...) {
    }
    std::free(block);
  }
  // After fork() the child's copy of the mutex may be held by a thread that
  // does not exist there.
  void reset_lock_after_fork() { new (&mu_) std::mutex(); }

 private:
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<char*>> free_;
  size_t cached_ = 0, limit_ = 0;
};

// Never destroyed: capsules may release blocks during interpreter shutdown.
OutputCache& output_cache() {
  static OutputCache* cache = [] {
    auto* c = new OutputCache();
    pthread_atfork(nullptr, nullptr, [] { output_cache().reset_lock_after_fork(); });
    return c;
  }();
  return *cache;
}

std::atomic<bool> g_fill_enabled{false};
std::atomic<float> g_fill_value{0.0f};
std::atomic<int64_t> g_guard{0};
constexpr uint32_t kGuardF32Bits = 0x7fc0deadu;
constexpr int64_t kGuardI64 = 0x5a5a5a5a5a5a5a5aLL;

// A new array of `shape`; with guards, the interior of a larger 1-D array.
template <class T>
py::array_t<T> new_array(const std::vector<int64_t>& shape, T guard_value, T fill_value,
                         bool fill) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;  // shapes were checked to fit in int64
  const int64_t guard = g_guard.load();
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  if (guard <= 0) {
    const size_t bytes = static_cast<size_t>(count) * sizeof(T);
    if (bytes < OutputCache::kMinBytes) {
      py::array_t<T> a(dims);
      if (fill) std::fill_n(a.mutable_data(), a.size(), fill_value);
      return a;
    }
    void* data = output_cache().take(bytes);
    if (data == nullptr) throw std::bad_alloc();
    py::capsule owner(data, [](void* d) { output_cache().give(d); });
    py::array_t<T> a(dims, static_cast<T*>(data), owner);
    if (fill) std::fill_n(a.mutable_data(), a.size(), fill_value);
    return a;
  }
  py::array_t<T> base(static_cast<py::ssize_t>(count + 2 * guard));
  T* b = base.mutable_data();
  std::fill_n(b, guard, guard_value);
  std::fill_n(b + guard + count, guard, guard_value);
  std::fill_n(b + guard, count, fill ? fill_value : guard_value);
  py::tuple dims_t(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) dims_t[i] = py::int_(dims[i]);
  py::object view = base[py::slice(guard, guard + count, 1)].attr("reshape")(dims_t);
  return py::reinterpret_borrow<py::array_t<T>>(view);
}
}  // namespace

void set_output_fill(bool enabled, float value) {
  g_fill_value.store(value);
  g_fill_enabled.store(enabled);
}

void set_output_guard(int64_t guard) { g_guard.store(guard < 0 ? 0 : guard); }

py::array_t<float> new_float32(const std::vector<int64_t>& shape) {
  float guard_value;
  std::memcpy(&guard_value, &kGuardF32Bits, sizeof(float));
  return new_array<float>(shape, guard_value, g_fill_value.load(), g_fill_enabled.load());
}

py::array_t<int64_t> new_int64(const std::vector<int64_t>& shape) {
  return new_array<int64_t>(shape, kGuardI64, int64_t{-1}, g_fill_enabled.load());
}

std::array<bool, 3> mask3_arg(py::handle obj, const char* op) {
  if (!(PyTuple_Check(obj.ptr()) || PyList_Check(obj.ptr())) || py::len(obj) != 3)
    type_error(std::string(op) + ": output_mask must be a tuple of 3 bools");
  py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  return {bool_arg(seq[0], op, "output_mask"), bool_arg(seq[1], op, "output_mask"),
          bool_arg(seq[2], op, "output_mask")};
}

py::object maybe_new_float32(bool want, const std::vector<int64_t>& shape, float** data) {
  *data = nullptr;
  if (!want) return py::none();
  py::array_t<float> a = new_float32(shape);
  *data = a.mutable_data();
  return std::move(a);
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
