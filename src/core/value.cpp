#include "anchors/core/value.h"

#include <stdexcept>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "anchors/core/error.h"

namespace anchors {

std::string to_string(const Value& value) {
  struct Visitor {
    std::string operator()(std::monostate) const { return "null"; }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return fmt::format("{}", d); }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const IntList& l) const { return fmt::format("[{}]", fmt::join(l, ", ")); }
  };
  return std::visit(Visitor{}, value);
}

IntList parse_int_list(const std::string& text, const std::string& what) {
  IntList out;
  std::string item;
  const auto flush = [&] {
    if (item.empty()) return;
    try {
      std::size_t used = 0;
      out.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error(fmt::format("{}: expected a list of integers like \"0,3,5\", got \"{}\"", what, text));
    }
    item.clear();
  };
  std::string_view body(text);
  while (!body.empty() && body.front() == ' ') body.remove_prefix(1);
  while (!body.empty() && body.back() == ' ') body.remove_suffix(1);
  if (body.size() >= 2 && body.front() == '[' && body.back() == ']') body = body.substr(1, body.size() - 2);
  for (const char c : body) {
    if (c == ',' || c == ':' || c == ' ') {
      flush();
    } else {
      item += c;
    }
  }
  flush();
  return out;
}

}  // namespace anchors
