// Output arrays: the recycled-block cache behind large outputs, and the test
// hooks (fill value, guard sentinels) of outputs.h.
#include "outputs.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>

namespace fastconv_py {
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

py::object maybe_new_float32(bool want, const std::vector<int64_t>& shape, float** data) {
  *data = nullptr;
  if (!want) return py::none();
  py::array_t<float> a = new_float32(shape);
  *data = a.mutable_data();
  return std::move(a);
}

PoolOutputs::PoolOutputs(const std::vector<int64_t>& shape, bool want_indices)
    : y(new_float32(shape)) {
  y_data = y.mutable_data();
  if (want_indices) {
    py::array_t<int64_t> a = new_int64(shape);
    indices_data = a.mutable_data();
    indices = std::move(a);
  }
}

py::object PoolOutputs::result() const {
  if (indices_data != nullptr) return py::make_tuple(y, indices);
  return y;
}

}  // namespace fastconv_py
