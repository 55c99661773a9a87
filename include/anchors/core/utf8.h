#pragma once
// UTF-8 <-> code point offset conversion. C++ spans are byte offsets; external
// formats (Python, JSON, CLI) use code point offsets.
//
// Costs: codepoint_offset and byte_offset walk from the start of the text,
// O(offset) each; converting every sentence of a long text that way is
// quadratic, so code that converts many offsets of one text uses a Cursor,
// which walks on from its previous answer (one pass for ordered offsets).
#include <cstddef>
#include <string_view>

namespace anchors::utf8 {

// Number of code points in text[0, byte_offset). byte_offset must lie on a code
// point boundary and be <= text.size(); otherwise anchors::Error.
std::size_t codepoint_offset(std::string_view text, std::size_t byte_offset);

// Byte offset of the code point with index `codepoint_offset`; text.size() for
// the one-past-the-end index; anchors::Error beyond that.
std::size_t byte_offset(std::string_view text, std::size_t codepoint_offset);

// Converts offsets of one text in both directions, walking on from where the
// previous conversion stopped. For offsets that never decrease (sentence
// spans in order, token offsets in order) all conversions together cost
// O(text.size() + number of calls); an offset behind the previous one starts
// again from the beginning of the text (correct, O(offset)). Results and
// errors are exactly those of the free functions above; a failed conversion
// leaves the cursor where it was. The cursor views `text`, which must outlive it.
class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}

  // As utf8::codepoint_offset(text, byte_offset).
  std::size_t codepoint_offset(std::size_t byte_offset);
  // As utf8::byte_offset(text, codepoint_offset).
  std::size_t byte_offset(std::size_t codepoint_offset);

 private:
  std::string_view text_;
  std::size_t byte_ = 0;       // a code point boundary of text_ ...
  std::size_t codepoints_ = 0;  // ... and the number of code points before it
};

// Number of code points in text (invalid bytes count one each).
std::size_t length(std::string_view text);

// True if text is well-formed UTF-8.
bool is_valid(std::string_view text);

}  // namespace anchors::utf8
