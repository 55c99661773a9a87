#pragma once
// The one exception type of the library. Every bad input (malformed files,
// out-of-range spans, unsupported options) surfaces as an anchors::Error whose
// message names the offending file or argument and the problem; the Python
// bindings translate it to thought_anchors.Error with the same message.
#include <stdexcept>
#include <string>

namespace anchors {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace anchors
