#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "anchors/core/span.h"

namespace anchors {

// One sentence ("chunk" in the reference code) of a reasoning trace.
struct Sentence {
  std::size_t index = 0;                 // position in the trace, 0-based
  std::string text;                      // stripped sentence text (merged chunks joined by one space)
  CharSpan chars;                        // bytes of the source text this sentence covers
  std::optional<TokenSpan> tokens;       // token positions, when a tokenizer has been applied
  std::vector<std::string> tags;         // function tags (docs/design.md §3 taxonomy)

  bool operator==(const Sentence& o) const {
    return index == o.index && text == o.text && chars == o.chars && tokens == o.tokens &&
           tags == o.tags;
  }
};

}  // namespace anchors
