#include "anchors/core/json_depth.h"

#include <fmt/format.h>

#include "anchors/core/error.h"

namespace anchors {

bool json_nests_deeper_than(std::string_view text, std::size_t levels) {
  std::size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > levels) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

void check_json_depth(std::string_view text, const std::string& source) {
  if (json_nests_deeper_than(text, kMaxJsonDepth))
    throw Error(fmt::format("{}: JSON nests deeper than {} levels of arrays and objects (real files nest a few; "
                            "this one is corrupt or hostile)",
                            source, kMaxJsonDepth));
}

}  // namespace anchors
