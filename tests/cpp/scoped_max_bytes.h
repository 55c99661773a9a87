#pragma once
// ScopedMaxBytes: sets (or unsets) ANCHORS_MAX_FILE_BYTES for one scope.
// Shared by both test suites.
#include <cstdlib>
#include <optional>
#include <string>

#include "anchors/core/file_io.h"

namespace anchors::testing {

// Sets (or, with nullptr, unsets) ANCHORS_MAX_FILE_BYTES for one scope, so
// that a value in the environment of the test run cannot change the limits
// a test expects.
class ScopedMaxBytes {
 public:
  explicit ScopedMaxBytes(const char* value) {
    if (const char* old = std::getenv(kMaxFileBytesVariable)) old_ = old;
    if (value != nullptr)
      ::setenv(kMaxFileBytesVariable, value, 1);
    else
      ::unsetenv(kMaxFileBytesVariable);
  }
  ~ScopedMaxBytes() {
    if (old_)
      ::setenv(kMaxFileBytesVariable, old_->c_str(), 1);
    else
      ::unsetenv(kMaxFileBytesVariable);
  }
  ScopedMaxBytes(const ScopedMaxBytes&) = delete;
  ScopedMaxBytes& operator=(const ScopedMaxBytes&) = delete;

 private:
  std::optional<std::string> old_;
};

}  // namespace anchors::testing
