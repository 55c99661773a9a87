#pragma once
// Half-open index ranges [begin, end) into a text (bytes) or a token sequence.
#include <cstddef>
#include <cstdint>

namespace anchors {

// Byte offsets into a UTF-8 string. C++ indexes text by byte; the Python layer
// and every JSON document we write use Unicode code point offsets instead (see
// utf8.h for the conversion), so `text[start:end]` works in Python.
struct CharSpan {
  std::size_t begin = 0;
  std::size_t end = 0;
  std::size_t size() const { return end - begin; }
  bool empty() const { return end <= begin; }
  bool operator==(const CharSpan& o) const { return begin == o.begin && end == o.end; }
  bool operator!=(const CharSpan& o) const { return !(*this == o); }
};

// Token positions [begin, end) in the model's input ids (prompt included).
struct TokenSpan {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  std::int64_t size() const { return end - begin; }
  bool empty() const { return end <= begin; }
  bool operator==(const TokenSpan& o) const { return begin == o.begin && end == o.end; }
  bool operator!=(const TokenSpan& o) const { return !(*this == o); }
};

}  // namespace anchors
