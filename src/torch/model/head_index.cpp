#include "anchors/model/head_index.h"

#include <fmt/format.h>

#include "anchors/core/error.h"

namespace anchors::model {

std::vector<HeadIndex> heads_from_flat(const std::vector<std::int64_t>& flat, const std::string& method) {
  if (flat.size() % 2 != 0)
    throw Error(fmt::format("{}: option heads holds (layer, head) pairs written flat, like [2, 3, 5, 0]; got {} numbers",
                            method, flat.size()));
  std::vector<HeadIndex> heads;
  for (std::size_t i = 0; i < flat.size(); i += 2) heads.push_back({flat[i], flat[i + 1]});
  return heads;
}

std::string format_heads(const std::vector<HeadIndex>& heads) {
  std::string out;
  for (const auto& h : heads) out += fmt::format("{}{}:{}", out.empty() ? "" : ",", h.layer, h.head);
  return out;
}

}  // namespace anchors::model
