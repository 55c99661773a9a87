// \boxed{...} extraction (include/anchors/core/answers.h, docs/answers.md).
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "anchors/core/answers.h"
#include "answers_internal.h"

namespace anchors {

using namespace answers_internal;  // the character classes and tokens shared by the answer sources

namespace {

struct BoxSpan {
  std::size_t open;           // index of the box's '{'
  std::size_t close = npos;   // index of its matching '}', npos if unterminated
};

// Every \boxed{ in the text with its matching brace, found in one pass with a
// stack (so that a text with many unterminated boxes stays linear). A
// backslash always consumes the next character: \{ and \} are literal braces
// in LaTeX, and "\\" is a line break, not an escape of what follows.
std::vector<BoxSpan> find_boxes(std::string_view text) {
  constexpr std::string_view kBoxed = "\\boxed";
  constexpr std::size_t kNotABox = npos;
  std::vector<BoxSpan> boxes;
  std::vector<std::size_t> open;  // per open brace: index into boxes, or kNotABox
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\') {
      const std::size_t after = i + kBoxed.size();
      if (text.compare(i, kBoxed.size(), kBoxed) == 0 &&
          (after == text.size() || !is_letter(text[after]))) {
        std::size_t j = after;
        while (j < text.size() && is_space(text[j])) ++j;
        if (j < text.size() && text[j] == '{') {
          boxes.push_back({j});
          open.push_back(boxes.size() - 1);
          i = j;
        } else {
          i = after - 1;
        }
        continue;
      }
      ++i;  // skip the escaped character (or the first letter of a command)
      continue;
    }
    if (c == '{') {
      open.push_back(kNotABox);
    } else if (c == '}' && !open.empty()) {  // a stray '}' closes nothing
      if (open.back() != kNotABox) boxes[open.back()].close = i;
      open.pop_back();
    }
  }
  return boxes;
}

}  // namespace

std::vector<std::string> extract_all_boxed(std::string_view text) {
  std::vector<std::string> out;
  std::size_t resume = 0;  // boxes starting before this are inside a returned one
  for (const BoxSpan& box : find_boxes(text)) {
    if (box.open < resume || box.close == npos) continue;
    out.emplace_back(text.substr(box.open + 1, box.close - box.open - 1));
    resume = box.close + 1;
  }
  return out;
}

std::optional<std::string> extract_boxed(std::string_view text) {
  for (auto& content : extract_all_boxed(text)) {
    if (!normalize_answer(content).empty()) return std::move(content);
  }
  return std::nullopt;
}

}  // namespace anchors
