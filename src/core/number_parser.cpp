// The numeric value of a normalized answer (answer_numeric_value in
// include/anchors/core/answers.h): a small recursive-descent evaluator in place
// of the SymPy comparison of the authors' code.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <optional>
#include <string_view>
#include <system_error>

#include "anchors/core/answers.h"
#include "answers_internal.h"

namespace anchors {

using namespace answers_internal;  // the character classes and tokens shared by the answer sources

namespace {

// Recursive descent over the canonical text:
//   expr    := term (('+' | '-') term)*
//   term    := unary (('*' | '/') unary | <implicit product> postfix)*
//   unary   := ('-' | '+') unary | postfix
//   postfix := primary ('^' (digit | '{' expr '}' | '(' expr ')'))?
//   primary := number [mixed-number \frac] | 'pi' | '(' expr ')' | '{' expr '}'
//            | '\frac' arg arg | '\sqrt' ['[' expr ']'] arg
//   arg     := digit | '{' expr '}'
class NumberParser {
 public:
  explicit NumberParser(std::string_view s) : s_(s) {}

  std::optional<double> parse() {
    auto v = expr();
    if (!v || pos_ != s_.size() || !std::isfinite(*v)) return std::nullopt;
    return v;
  }

 private:
  static constexpr int kMaxParseDepth = 200;

  struct DepthGuard {
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
    int& depth;
  };

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }
  bool looking_at(std::string_view w) const { return s_.compare(pos_, w.size(), w) == 0; }
  bool eat(char c) {
    if (peek() != c || at_end()) return false;
    ++pos_;
    return true;
  }
  bool eat(std::string_view w) {
    if (!looking_at(w)) return false;
    pos_ += w.size();
    return true;
  }
  // A command name must not continue with a letter (\fracx is no \frac).
  bool eat_command(std::string_view w) {
    if (!looking_at(w)) return false;
    const std::size_t after = pos_ + w.size();
    if (after < s_.size() && is_letter(s_[after])) return false;
    pos_ = after;
    return true;
  }

  std::optional<double> expr() {
    DepthGuard guard(depth_);
    if (depth_ > kMaxParseDepth) return std::nullopt;
    auto v = term();
    while (v) {
      if (eat('+')) {
        auto r = term();
        if (!r) return std::nullopt;
        *v += *r;
      } else if (eat('-')) {
        auto r = term();
        if (!r) return std::nullopt;
        *v -= *r;
      } else {
        break;
      }
    }
    return v;
  }

  bool starts_primary() const {
    const char c = peek();
    return is_digit(c) || c == '.' || c == '(' || c == '{' || c == '\\' || looking_at("pi");
  }

  std::optional<double> term() {
    auto v = unary();
    while (v) {
      if (eat('*')) {
        auto r = unary();
        if (!r) return std::nullopt;
        *v *= *r;
      } else if (eat('/')) {
        auto r = unary();
        if (!r) return std::nullopt;
        *v /= *r;
      } else if (starts_primary()) {  // 2\sqrt3, 3pi, (1)(2)
        auto r = postfix();
        if (!r) return std::nullopt;
        *v *= *r;
      } else {
        break;
      }
    }
    return v;
  }

  std::optional<double> unary() {
    DepthGuard guard(depth_);
    if (depth_ > kMaxParseDepth) return std::nullopt;
    if (eat('-')) {
      auto v = unary();
      if (!v) return std::nullopt;
      return -*v;
    }
    if (eat('+')) return unary();
    return postfix();
  }

  std::optional<double> postfix() {
    auto base = primary();
    if (!base || !eat('^')) return base;
    std::optional<double> exponent;
    if (is_digit(peek())) {
      exponent = s_[pos_++] - '0';
    } else if (eat('{')) {
      exponent = expr();
      if (!eat('}')) return std::nullopt;
    } else if (eat('(')) {
      exponent = expr();
      if (!eat(')')) return std::nullopt;
    }
    if (!exponent) return std::nullopt;
    return std::pow(*base, *exponent);
  }

  // digits ['.' digits] | '.' digits, read with from_chars (locale-free).
  std::optional<double> number(bool* is_integer) {
    const std::size_t start = pos_;
    while (is_digit(peek())) ++pos_;
    *is_integer = true;
    if (peek() == '.' && pos_ + 1 < s_.size() && is_digit(s_[pos_ + 1])) {
      *is_integer = false;
      ++pos_;
      while (is_digit(peek())) ++pos_;
    }
    if (pos_ == start) return std::nullopt;
    double value = 0;
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    const auto result = std::from_chars(first, last, value);
    if (result.ec != std::errc() || result.ptr != last) return std::nullopt;
    return value;
  }

  std::optional<double> argument() {
    if (is_digit(peek())) return static_cast<double>(s_[pos_++] - '0');
    if (!eat('{')) return std::nullopt;
    auto v = expr();
    if (!eat('}')) return std::nullopt;
    return v;
  }

  // A plain non-negative integer argument ("7" or "{12}"), for mixed numbers.
  std::optional<double> integer_argument() {
    if (is_digit(peek())) return static_cast<double>(s_[pos_++] - '0');
    if (!eat('{')) return std::nullopt;
    bool is_integer = false;
    auto v = number(&is_integer);
    if (!v || !is_integer || !eat('}')) return std::nullopt;
    return v;
  }

  std::optional<double> primary() {
    const char c = peek();
    if (is_digit(c) || c == '.') {
      bool is_integer = false;
      auto v = number(&is_integer);
      if (!v) return std::nullopt;
      // Mixed number 2\frac12 = 2 + 1/2, as MATH writes them; only with plain
      // integer parts (2\frac{\pi}{3} is a product).
      if (is_integer && looking_at("\\frac")) {
        const std::size_t save = pos_;
        eat_command("\\frac");
        auto num = integer_argument();
        auto den = num ? integer_argument() : std::nullopt;
        if (num && den) return *v + *num / *den;
        pos_ = save;
      }
      return v;
    }
    if (eat("pi")) return 3.14159265358979323846;
    if (eat('(')) {
      auto v = expr();
      if (!eat(')')) return std::nullopt;
      return v;
    }
    if (eat('{')) {
      auto v = expr();
      if (!eat('}')) return std::nullopt;
      return v;
    }
    if (eat_command("\\frac")) {
      auto num = argument();
      if (!num) return std::nullopt;
      auto den = argument();
      if (!den) return std::nullopt;
      return *num / *den;
    }
    if (eat_command("\\sqrt")) {
      std::optional<double> index;
      if (eat('[')) {
        index = expr();
        if (!index || !eat(']')) return std::nullopt;
      }
      auto radicand = argument();
      if (!radicand) return std::nullopt;
      if (index) return std::pow(*radicand, 1.0 / *index);
      return std::sqrt(*radicand);
    }
    return std::nullopt;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::optional<double> answer_numeric_value(std::string_view normalized_answer) {
  if (normalized_answer.empty()) return std::nullopt;
  return NumberParser(normalized_answer).parse();
}

}  // namespace anchors
