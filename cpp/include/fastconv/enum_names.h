// Name lookups over the one list of an enum's values (kIsas, kConvAlgos).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace fastconv {

// The value v of `values` with name(v) == s, the whole string counting
// (Python strings may hold NUL); false if there is none.
template <class E, std::size_t N>
bool enum_from_name(std::string_view s, const E (&values)[N], const char* (*name)(E), E* out) {
  for (E v : values) {
    if (s == name(v)) {
      *out = v;
      return true;
    }
  }
  return false;
}

// "'a', 'b', 'c'", or with last_sep " or ": "'a', 'b' or 'c'" (for messages).
template <class E, std::size_t N>
std::string enum_name_list(const E (&values)[N], const char* (*name)(E),
                           const char* last_sep = ", ") {
  std::string out;
  for (std::size_t i = 0; i < N; ++i) {
    if (i > 0) out += i + 1 == N ? last_sep : ", ";
    out += std::string("'") + name(values[i]) + "'";
  }
  return out;
}

}  // namespace fastconv
