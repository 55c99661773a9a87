#include "builtin_methods.h"

#include "anchors/methods/resampling.h"

namespace anchors::detail {

std::vector<std::pair<std::string, MethodFactory>> builtin_methods() {
  return {
      {"resampling", [] { return std::make_unique<ResamplingMethod>(); }},
  };
}

}  // namespace anchors::detail
