// Status: how every C++ entry point reports failure. No exceptions cross the
// library boundary (and none may leave an OpenMP region); the bindings turn a
// Status into the Python exception named below (src/args.cpp, throw_if_error).
#pragma once

#include <string>
#include <utility>

namespace fastconv {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // ValueError: a shape or parameter is wrong
  kOutOfRange,       // ValueError: a size does not fit in int64
  kOutOfMemory,      // MemoryError: a workspace allocation failed
  kInterrupted,      // KeyboardInterrupt: the caller asked to stop
  kUnsupported,      // RuntimeError: e.g. a forced ISA the CPU lacks
};

class Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
  static Status OutOfMemory(std::string m) { return {StatusCode::kOutOfMemory, std::move(m)}; }
  static Status Interrupted() { return {StatusCode::kInterrupted, "interrupted"}; }
  static Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(StatusCode c, std::string m) : code_(c), message_(std::move(m)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Returns early from the enclosing function when `expr` is not ok.
#define FASTCONV_RETURN_IF_ERROR(expr) \
  do {                                 \
    ::fastconv::Status _st = (expr);   \
    if (!_st.ok()) return _st;         \
  } while (0)

}  // namespace fastconv
