// Errors thrown by the dtd core. All derive from std types so that any binding maps them without special cases:
// std::invalid_argument (bad model or bad call arguments) -> Python ValueError.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace dtd {

/// A model description that cannot be built into a network (unknown attribute, weight of the wrong shape, ...).
class ModelError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// A model file that cannot be read: malformed or truncated protobuf, inconsistent tensor, unsafe or missing external
/// data. The message names the message type, the field and the byte offset (or the tensor and the file).
class ModelLoadError : public ModelError {
 public:
  using ModelError::ModelError;
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace dtd

/// Throws `type` with the streamed message when `cond` is false.
#define DTD_CHECK(cond, type, ...)                               \
  do {                                                           \
    if (!(cond)) throw type(::dtd::detail::concat(__VA_ARGS__)); \
  } while (0)
