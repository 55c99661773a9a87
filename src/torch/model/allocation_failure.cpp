#include "anchors/model/allocation_failure.h"

#include <c10/util/Exception.h>

#include <new>

namespace anchors::model {

std::optional<std::string> allocation_failure(const std::exception& error) {
  const auto first_line = [](const std::string& text) { return "out of memory: " + text.substr(0, text.find('\n')); };
  if (dynamic_cast<const std::bad_alloc*>(&error) != nullptr)
    return first_line(std::string("an allocation failed (") + error.what() + ")");
  const auto* c10_error = dynamic_cast<const c10::Error*>(&error);
  if (c10_error == nullptr) return std::nullopt;
  const std::string message = c10_error->what_without_backtrace();
  // The CPU allocator's posix_memalign failure is a plain c10::Error; its text
  // is stable across torch 2.x ("can't allocate memory" / "not enough memory").
  if (dynamic_cast<const c10::OutOfMemoryError*>(&error) != nullptr ||
      message.find("can't allocate memory") != std::string::npos ||
      message.find("not enough memory") != std::string::npos)
    return first_line(message);
  return std::nullopt;
}

}  // namespace anchors::model
