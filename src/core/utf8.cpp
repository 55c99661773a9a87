// UTF-8 <-> code point offset conversion (include/anchors/core/utf8.h).
//
// Decoding follows the Unicode "well-formed UTF-8" table (no overlong forms,
// no surrogates, nothing above U+10FFFF). Any byte that does not start a
// complete well-formed sequence counts as one code point of its own; this is
// the same convention as Python's `errors="surrogateescape"`, so offsets agree
// with Python even for malformed input, and no input can make us fail.
#include "anchors/core/utf8.h"

#include <fmt/format.h>

#include "anchors/core/error.h"

namespace anchors::utf8 {
namespace {

// Length in bytes of the well-formed sequence starting at text[pos], or 0 if
// the bytes there are not one (the caller then treats text[pos] as a single
// invalid character).
std::size_t sequence_length(std::string_view text, std::size_t pos) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[pos + k]); };
  const auto in = [](unsigned char b, unsigned char lo, unsigned char hi) { return b >= lo && b <= hi; };
  const std::size_t left = text.size() - pos;
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) return 1;
  if (in(b0, 0xC2, 0xDF)) return left >= 2 && in(byte(1), 0x80, 0xBF) ? 2 : 0;
  if (in(b0, 0xE0, 0xEF)) {
    if (left < 3) return 0;
    // Second-byte ranges exclude overlong forms (E0) and surrogates (ED).
    const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;
    return in(byte(1), lo, hi) && in(byte(2), 0x80, 0xBF) ? 3 : 0;
  }
  if (in(b0, 0xF0, 0xF4)) {
    if (left < 4) return 0;
    // Second-byte ranges exclude overlong forms (F0) and code points > U+10FFFF (F4).
    const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;
    return in(byte(1), lo, hi) && in(byte(2), 0x80, 0xBF) && in(byte(3), 0x80, 0xBF) ? 4 : 0;
  }
  return 0;  // continuation byte, C0/C1 or F5..FF: never a valid lead byte
}

// Bytes taken by the character starting at text[pos] (1 for an invalid byte).
std::size_t step(std::string_view text, std::size_t pos) {
  const std::size_t n = sequence_length(text, pos);
  return n == 0 ? 1 : n;
}

}  // namespace

std::size_t codepoint_offset(std::string_view text, std::size_t byte_offset) {
  return Cursor(text).codepoint_offset(byte_offset);
}

std::size_t byte_offset(std::string_view text, std::size_t codepoint_offset) {
  return Cursor(text).byte_offset(codepoint_offset);
}

std::size_t Cursor::codepoint_offset(std::size_t byte_offset) {
  if (byte_offset > text_.size()) {
    throw Error(fmt::format("utf8::codepoint_offset: byte offset {} is past the end of the text ({} bytes)",
                            byte_offset, text_.size()));
  }
  // byte_ is a point the walk from byte 0 passes through, so walking on from
  // it is that same walk (a query behind it has to start over).
  std::size_t pos = byte_offset >= byte_ ? byte_ : 0;
  std::size_t count = byte_offset >= byte_ ? codepoints_ : 0;
  std::size_t start = pos;  // first byte of the last character stepped over
  while (pos < byte_offset) {
    start = pos;
    pos += step(text_, pos);
    ++count;
  }
  if (pos != byte_offset) {
    throw Error(fmt::format(
        "utf8::codepoint_offset: byte offset {} is inside a UTF-8 character (bytes [{}, {})), "
        "not on a code point boundary",
        byte_offset, start, pos));
  }
  byte_ = pos;
  codepoints_ = count;
  return count;
}

std::size_t Cursor::byte_offset(std::size_t codepoint_offset) {
  std::size_t pos = codepoint_offset >= codepoints_ ? byte_ : 0;
  std::size_t count = codepoint_offset >= codepoints_ ? codepoints_ : 0;
  while (count < codepoint_offset && pos < text_.size()) {
    pos += step(text_, pos);
    ++count;
  }
  if (count < codepoint_offset) {
    throw Error(fmt::format(
        "utf8::byte_offset: code point offset {} is past the end of the text ({} code points)",
        codepoint_offset, count));
  }
  byte_ = pos;
  codepoints_ = count;
  return pos;
}

std::size_t length(std::string_view text) {
  std::size_t pos = 0;
  std::size_t count = 0;
  while (pos < text.size()) {
    pos += step(text, pos);
    ++count;
  }
  return count;
}

bool is_valid(std::string_view text) {
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t n = sequence_length(text, pos);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

}  // namespace anchors::utf8
