#pragma once
// UTF-8 <-> code point offset conversion. C++ spans are byte offsets; external
// formats (Python, JSON, CLI) use code point offsets.
#include <cstddef>
#include <string_view>

namespace anchors::utf8 {

// Number of code points in text[0, byte_offset). byte_offset must lie on a code
// point boundary and be <= text.size(); otherwise anchors::Error.
std::size_t codepoint_offset(std::string_view text, std::size_t byte_offset);

// Byte offset of the code point with index `codepoint_offset`; text.size() for
// the one-past-the-end index; anchors::Error beyond that.
std::size_t byte_offset(std::string_view text, std::size_t codepoint_offset);

// Number of code points in text (invalid bytes count one each).
std::size_t length(std::string_view text);

// True if text is well-formed UTF-8.
bool is_valid(std::string_view text);

}  // namespace anchors::utf8
