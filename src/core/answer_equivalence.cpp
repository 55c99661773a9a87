// answers_equivalent (include/anchors/core/answers.h, docs/answers.md):
// normalized strings, then numbers, then a leading assignment, a trailing
// \text unit, and tuples or intervals element by element.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <iterator>
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

// The relative tolerance of 1e-9 that answers.h promises.
bool numbers_close(double a, double b) {
  if (a == b) return true;
  return std::abs(a - b) <= 1e-9 * std::max(std::abs(a), std::abs(b));
}

// "x", "x_1", "x_{12}", "\theta": something that names one variable.
bool is_variable_name(std::string_view s) {
  if (s.size() >= 2 && s[0] == '\\') {
    return std::all_of(s.begin() + 1, s.end(), [](char c) { return is_letter(c); });
  }
  if (s.empty() || !is_letter(s[0])) return false;
  if (s.size() == 1) return true;
  if (s[1] != '_') return false;
  std::string_view sub = s.substr(2);
  if (sub.size() >= 2 && sub.front() == '{' && sub.back() == '}') sub = sub.substr(1, sub.size() - 2);
  return !sub.empty() &&
         std::all_of(sub.begin(), sub.end(), [](char c) { return is_letter(c) || is_digit(c); });
}

// Splits a normalized "x=5" into ("x", "5"); nullopt unless there is exactly
// one '=' and its left side names one variable.
std::optional<std::pair<std::string, std::string>> split_assignment(const std::string& s) {
  const std::size_t eq = s.find('=');
  if (eq == std::string::npos || s.find('=', eq + 1) != std::string::npos) return std::nullopt;
  std::string lhs = s.substr(0, eq);
  std::string rhs = s.substr(eq + 1);
  if (rhs.empty() || !is_variable_name(lhs)) return std::nullopt;
  return std::make_pair(std::move(lhs), std::move(rhs));
}

struct ValueAndUnit {
  std::string value;  // normalized
  std::string unit;   // normalized, empty if none
};

bool is_unit_text(const List& children) {
  bool letter = false;
  for (const Node& n : children) {
    if (n.kind == Kind::Space) continue;
    if (n.kind != Kind::Char) return false;
    if (is_letter(n.ch)) {
      letter = true;
    } else if (n.ch != '.' && n.ch != '/') {
      return false;
    }
  }
  return letter;
}

// "5\text{ cm}", "5 \mathrm{m}^2": a numeric value followed by a unit written
// in a text command at the very end. Plain letters ("5cm") are not a unit:
// they could be a variable.
std::optional<ValueAndUnit> split_trailing_unit(std::string_view raw) {
  std::size_t commas = 0;
  auto tree = parse_tree(prepare(raw), &commas);
  if (!tree) return std::nullopt;
  List& top = *tree;
  std::size_t end = top.size();
  while (end > 0 && (top[end - 1].kind == Kind::Space || is_char(top[end - 1], '.') ||
                     is_char(top[end - 1], '$'))) {
    --end;
  }
  const std::size_t unit_end = end;
  if (end >= 2 && is_char(top[end - 2], '^')) end -= 2;  // cm^2, \text{m}^{2}
  if (end == 0 || top[end - 1].kind != Kind::Group || !is_unit_text(top[end - 1].children)) {
    return std::nullopt;
  }
  std::size_t w = end - 1;
  while (w > 0 && top[w - 1].kind == Kind::Space) --w;
  if (w == 0) return std::nullopt;
  --w;
  if (top[w].kind != Kind::Word ||
      !word_in(top[w].name, {"text", "mathrm", "mbox", "textrm", "textnormal", "textup", "textit"})) {
    return std::nullopt;
  }
  List value_tokens(std::make_move_iterator(top.begin()),
                    std::make_move_iterator(top.begin() + static_cast<std::ptrdiff_t>(w)));
  List unit_tokens(std::make_move_iterator(top.begin() + static_cast<std::ptrdiff_t>(end - 1)),
                   std::make_move_iterator(top.begin() + static_cast<std::ptrdiff_t>(unit_end)));
  ValueAndUnit out{canonical_text(std::move(value_tokens), commas),
                   canonical_text(std::move(unit_tokens), commas)};
  if (out.value.empty()) return std::nullopt;
  return out;
}

bool scalars_equal(const std::string& a, const std::string& b) {
  if (a == b) return true;
  const auto x = answer_numeric_value(a);
  if (!x) return false;
  const auto y = answer_numeric_value(b);
  return y && numbers_close(*x, *y);
}

// Splits "(a,b]" into its delimiters and top-level comma-separated items.
struct Sequence {
  char open = 0;
  char close = 0;
  std::vector<std::string> items;
};

Sequence split_sequence(const std::string& s) {
  Sequence seq;
  std::string_view body = s;
  if (s.size() >= 2 && (s.front() == '(' || s.front() == '[') &&
      (s.back() == ')' || s.back() == ']')) {
    // The outer pair must enclose everything: "(1)+(2)" is no tuple.
    int depth = 0;
    bool encloses = true;
    for (std::size_t k = 0; k + 1 < s.size(); ++k) {
      const char c = s[k];
      if (c == '(' || c == '[' || c == '{') ++depth;
      if (c == ')' || c == ']' || c == '}') --depth;
      if (depth <= 0) {
        encloses = false;
        break;
      }
    }
    if (encloses) {
      seq.open = s.front();
      seq.close = s.back();
      body = std::string_view(s).substr(1, s.size() - 2);
    }
  }
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t k = 0; k < body.size(); ++k) {
    const char c = body[k];
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') --depth;
    if (c == ',' && depth == 0) {
      seq.items.emplace_back(body.substr(start, k - start));
      start = k + 1;
    }
  }
  seq.items.emplace_back(body.substr(start));
  return seq;
}

bool values_equal(const std::string& a, const std::string& b) {
  if (scalars_equal(a, b)) return true;
  const Sequence x = split_sequence(a);
  const Sequence y = split_sequence(b);
  if (x.open != y.open || x.close != y.close || x.items.size() != y.items.size()) return false;
  if (x.items.size() < 2 && x.open == 0) return false;  // not a sequence at all
  for (std::size_t k = 0; k < x.items.size(); ++k) {
    if (x.items[k].empty() || !scalars_equal(x.items[k], y.items[k])) return false;
  }
  return true;
}

}  // namespace

bool answers_equivalent(std::string_view a, std::string_view b) {
  const std::string na = normalize_answer(a);
  const std::string nb = normalize_answer(b);
  if (na.empty() || nb.empty()) return false;
  if (na == nb) return true;

  ValueAndUnit x{na, ""};
  ValueAndUnit y{nb, ""};
  // A trailing \text unit is split off only when what precedes it is a number.
  const auto numeric_after_assignment = [](const std::string& v) {
    const auto assignment = split_assignment(v);
    return answer_numeric_value(assignment ? assignment->second : v).has_value();
  };
  if (auto split = split_trailing_unit(a); split && numeric_after_assignment(split->value)) x = *split;
  if (auto split = split_trailing_unit(b); split && numeric_after_assignment(split->value)) y = *split;
  if (!x.unit.empty() && !y.unit.empty() && x.unit != y.unit) return false;

  // "x=5" vs "5": compare the right-hand side; "x=5" vs "y=5" is not equal.
  const auto ax = split_assignment(x.value);
  const auto ay = split_assignment(y.value);
  if (ax && ay) {
    if (ax->first != ay->first) return false;
    return values_equal(ax->second, ay->second);
  }
  return values_equal(ax ? ax->second : x.value, ay ? ay->second : y.value);
}

}  // namespace anchors
