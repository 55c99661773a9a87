#pragma once
// How deeply a JSON document from outside (a file, an HTTP body, a model's
// answer) may nest. nlohmann parses any depth without recursing, but printing,
// copying and comparing a parsed value recurse once per level, and so do
// readers of recursive structures (a tokenizer's "Sequence" decoders): a few
// hundred kilobytes of '[' overflowed the stack and killed the process (a
// 200 KB request body stopped `anchors serve`). Real documents nest fewer
// than ten levels; the readers refuse deeper ones before parsing.
#include <cstddef>
#include <string>
#include <string_view>

namespace anchors {

inline constexpr std::size_t kMaxJsonDepth = 512;

// True when the arrays and objects of `text` nest deeper than `levels`. One
// pass over the text, string contents skipped; it says nothing about whether
// the text is valid JSON (the parser decides that), but for valid JSON it is
// exact.
bool json_nests_deeper_than(std::string_view text, std::size_t levels = kMaxJsonDepth);

// anchors::Error "<source>: JSON nests deeper than 512 levels ..." when
// json_nests_deeper_than(text).
void check_json_depth(std::string_view text, const std::string& source);

}  // namespace anchors
