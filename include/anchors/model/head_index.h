#pragma once
// One attention head of a decoder: (layer, query head). Shared by the
// white-box analyses that select heads (attention_rhythm.h's local / global
// heads, receiver heads).
#include <cstdint>
#include <string>
#include <vector>

namespace anchors::model {

struct HeadIndex {
  std::int64_t layer = 0;  // decoder layer, 0-based
  std::int64_t head = 0;   // query head within the layer, 0-based
  bool operator==(const HeadIndex&) const = default;
  bool operator<(const HeadIndex& o) const { return layer != o.layer ? layer < o.layer : head < o.head; }
};

// Heads as method options hold them, (layer, head) pairs written flat:
// [2, 3, 5, 0] -> {{2, 3}, {5, 0}}; anchors::Error "<method>: option heads
// ..." for an odd count.
std::vector<HeadIndex> heads_from_flat(const std::vector<std::int64_t>& flat, const std::string& method);
// "2:3,5:0" (metadata and messages).
std::string format_heads(const std::vector<HeadIndex>& heads);

}  // namespace anchors::model
