#pragma once
// A small JSON-like scalar used for method options and metadata, so results can
// record "the options used" without exposing a JSON library in public headers.
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace anchors {

// A list of integers: layer numbers, (layer, head) pairs written flat, ...
using IntList = std::vector<std::int64_t>;
using Value = std::variant<std::monostate, bool, std::int64_t, double, std::string, IntList>;
using ValueMap = std::map<std::string, Value>;

// Human-readable rendering: null, true/false, integers, shortest round-trip
// doubles, strings as-is, integer lists as "[0, 3, 5]".
std::string to_string(const Value& value);

// "0,3,5" or "2:3, 5:0" (commas, colons and spaces separate) as an IntList;
// "" and "[]" give an empty list, "[0, 3]" is read too. anchors::Error naming
// `what` for anything else.
IntList parse_int_list(const std::string& text, const std::string& what);

}  // namespace anchors
