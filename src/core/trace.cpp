// Trace::validate (include/anchors/core/trace.h): the invariants every method
// relies on when it indexes `text` or the model's token ids with a sentence.
#include "anchors/core/trace.h"

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/core/utf8.h"

namespace anchors {

void Trace::validate() const {
  const Sentence* previous_with_tokens = nullptr;
  // Spans are checked in order, so one cursor checks all boundaries in one
  // pass over the text (out-of-order spans fail the ordering check below).
  utf8::Cursor boundaries(text);
  for (std::size_t k = 0; k < sentences.size(); ++k) {
    const Sentence& s = sentences[k];
    if (s.index != k) {
      throw Error(fmt::format(
          "invalid trace: sentence {} has index {} (sentence indices must be 0, 1, 2, ... in order)",
          k, s.index));
    }

    const CharSpan& c = s.chars;
    const std::string where = fmt::format("invalid trace: sentence {}: char span [{}, {})", k,
                                          c.begin, c.end);
    if (c.begin > c.end) throw Error(where + " ends before it begins");
    if (c.end > text.size()) {
      throw Error(fmt::format("{} lies outside the text ({} bytes)", where, text.size()));
    }
    for (std::size_t offset : {c.begin, c.end}) {
      try {
        boundaries.codepoint_offset(offset);
      } catch (const Error&) {
        throw Error(fmt::format("{} cuts a UTF-8 character at byte {}", where, offset));
      }
    }
    if (k > 0 && c.begin < sentences[k - 1].chars.end) {
      const CharSpan& p = sentences[k - 1].chars;
      throw Error(fmt::format("{} overlaps or precedes sentence {}'s char span [{}, {})", where,
                              k - 1, p.begin, p.end));
    }

    if (s.tokens) {
      const TokenSpan& t = *s.tokens;
      const std::string at = fmt::format("invalid trace: sentence {}: token span [{}, {})", k,
                                         t.begin, t.end);
      if (t.begin < 0) throw Error(at + " starts before token 0");
      if (t.begin > t.end) throw Error(at + " ends before it begins");
      // Sentences without token spans are skipped: ordering is checked among
      // those that have them.
      if (previous_with_tokens != nullptr && t.begin < previous_with_tokens->tokens->end) {
        const TokenSpan& p = *previous_with_tokens->tokens;
        throw Error(fmt::format("{} overlaps or precedes sentence {}'s token span [{}, {})", at,
                                previous_with_tokens->index, p.begin, p.end));
      }
      previous_with_tokens = &s;
    }
  }
}

}  // namespace anchors
