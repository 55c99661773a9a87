#pragma once
// A small JSON-like scalar used for method options and metadata, so results can
// record "the options used" without exposing a JSON library in public headers.
#include <cstdint>
#include <map>
#include <string>
#include <variant>

namespace anchors {

using Value = std::variant<std::monostate, bool, std::int64_t, double, std::string>;
using ValueMap = std::map<std::string, Value>;

// Human-readable rendering: null, true/false, integers, shortest round-trip doubles, strings as-is.
std::string to_string(const Value& value);

}  // namespace anchors
