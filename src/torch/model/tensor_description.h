#pragma once
// Internal: how error messages name a tensor ("Float tensor of shape [2, 3] on cpu").
#include <torch/types.h>

#include <sstream>
#include <string>

namespace anchors::model::detail {

inline std::string describe(const torch::Tensor& t) {
  if (!t.defined()) return "undefined tensor";
  std::ostringstream s;
  s << t.scalar_type() << " tensor of shape " << t.sizes() << " on " << t.device();
  return s.str();
}

}  // namespace anchors::model::detail
