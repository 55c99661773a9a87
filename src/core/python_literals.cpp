// Python's str(float) and repr(list) read back (python_literals.h).
#include "python_literals.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <system_error>

#include <fmt/format.h>

namespace anchors::python_literals {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view strip(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// A cursor over the list text; every method leaves `why` set on failure.
class ListReader {
 public:
  ListReader(std::string_view text, bool allow_integers, std::string& why)
      : s_(text), allow_integers_(allow_integers), why_(why) {}

  std::optional<std::vector<std::string>> read() {
    skip_space();
    if (!eat('[')) return fail("it does not start with '['");
    std::vector<std::string> items;
    skip_space();
    if (eat(']')) return finish(std::move(items));
    while (true) {
      std::optional<std::string> item = read_item();
      if (!item) return std::nullopt;
      items.push_back(std::move(*item));
      skip_space();
      if (eat(']')) return finish(std::move(items));
      if (!eat(',')) return fail(fmt::format("expected ',' or ']' at character {}", pos_));
      skip_space();
      if (eat(']')) return finish(std::move(items));  // [a, b,]
    }
  }

 private:
  std::optional<std::vector<std::string>> finish(std::vector<std::string> items) {
    skip_space();
    if (pos_ != s_.size()) return fail(fmt::format("unexpected text after ']' at character {}", pos_));
    return items;
  }

  std::nullopt_t fail(std::string why) {
    why_ = std::move(why);
    return std::nullopt;
  }

  void skip_space() {
    while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
  }
  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  std::optional<std::string> read_item() {
    if (pos_ >= s_.size()) return fail("it ends inside the list");
    const char c = s_[pos_];
    if (c == '\'' || c == '"') return read_string(c);
    if (allow_integers_ && (is_digit(c) || c == '-' || c == '+')) return read_integer();
    return fail(fmt::format("expected a quoted string{} at character {}", allow_integers_ ? " or an integer" : "",
                            pos_));
  }

  std::optional<std::string> read_integer() {
    bool negative = false;
    if (s_[pos_] == '-' || s_[pos_] == '+') {
      negative = s_[pos_] == '-';
      ++pos_;
      skip_space();  // Python reads "- 3" as -3
    }
    const std::size_t start = pos_;
    while (pos_ < s_.size() && is_digit(s_[pos_])) ++pos_;
    if (pos_ == start) return fail(fmt::format("expected digits at character {}", start));
    std::string_view digits = s_.substr(start, pos_ - start);
    while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
    std::string out = (negative && digits != "0") ? "-" : "";
    out += digits;
    return out;
  }

  // Reads `count` hex digits as a code point.
  std::optional<std::uint32_t> read_hex(std::size_t count) {
    if (pos_ + count > s_.size()) return fail("a \\x, \\u or \\U escape is cut short");
    std::uint32_t value = 0;
    for (std::size_t k = 0; k < count; ++k) {
      const int h = hex_value(s_[pos_ + k]);
      if (h < 0) return fail(fmt::format("bad hex digit in an escape at character {}", pos_ + k));
      value = value * 16 + static_cast<std::uint32_t>(h);
    }
    pos_ += count;
    return value;
  }

  std::optional<std::string> read_string(char quote) {
    const std::size_t open = pos_++;
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) return fail(fmt::format("the string opened at character {} is not closed", open));
      const char c = s_[pos_++];
      if (c == quote) return out;
      if (c == '\n' || c == '\r') return fail(fmt::format("a line break inside the string at character {}", open));
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return fail("the text ends in an escape");
      const char e = s_[pos_++];
      switch (e) {
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'x':
        case 'u':
        case 'U': {
          const auto cp = read_hex(e == 'x' ? 2 : e == 'u' ? 4 : 8);
          if (!cp) return std::nullopt;
          // Lone surrogates are valid in a Python str but have no UTF-8 form.
          if (*cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF))
            return fail(fmt::format("the escape at character {} is not a Unicode character", pos_));
          append_utf8(out, *cp);
          break;
        }
        default:
          return fail(fmt::format("unsupported escape \\{} at character {}", e, pos_ - 2));
      }
    }
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  bool allow_integers_;
  std::string& why_;
};

// Where the first non-zero digit of a decimal number lies, as a power of ten
// (> 0: the number is at least 1), with the exponent saturated: tells an
// overflow from an underflow when from_chars reports either as out of range.
long long decimal_magnitude(std::string_view number) {
  std::size_t i = (number[0] == '-' || number[0] == '+') ? 1 : 0;
  long long magnitude = 0;
  bool found = false;
  for (; i < number.size() && is_digit(number[i]); ++i) {
    if (found || number[i] != '0') {
      found = true;
      ++magnitude;
    }
  }
  if (i < number.size() && number[i] == '.') {
    for (++i; i < number.size() && is_digit(number[i]); ++i) {
      if (found) continue;
      if (number[i] != '0') {
        found = true;
      } else {
        --magnitude;
      }
    }
  }
  if (i < number.size() && (number[i] == 'e' || number[i] == 'E')) {
    ++i;
    const bool negative = i < number.size() && number[i] == '-';
    if (i < number.size() && (number[i] == '-' || number[i] == '+')) ++i;
    long long exponent = 0;
    for (; i < number.size() && is_digit(number[i]); ++i) {
      if (exponent < 1000000000LL) exponent = exponent * 10 + (number[i] - '0');
    }
    magnitude += negative ? -exponent : exponent;
  }
  return magnitude;
}

}  // namespace

FloatText parse_float(std::string_view text) {
  const std::string_view s = strip(text);
  FloatText out;
  if (s.empty()) {
    out.kind = FloatKind::kNoValue;
    return out;
  }
  const std::string word = lower(s);
  for (const char* none : {"none", "null", "nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity",
                           "-infinity"}) {
    if (word == none) {
      out.kind = FloatKind::kNoValue;
      return out;
    }
  }
  // The grammar first (from_chars alone would take "1e" or "0x1p3" apart
  // differently from Python), then from_chars for correct rounding.
  std::size_t i = 0;
  const bool has_sign = s[0] == '+' || s[0] == '-';
  if (has_sign) ++i;
  std::size_t digits = 0;
  while (i < s.size() && is_digit(s[i])) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i, ++digits;
  }
  if (digits == 0) return out;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    std::size_t exponent_digits = 0;
    while (i < s.size() && is_digit(s[i])) ++i, ++exponent_digits;
    if (exponent_digits == 0) return out;
  }
  if (i != s.size()) return out;
  // from_chars takes no leading '+'.
  const std::string_view number = (s[0] == '+') ? s.substr(1) : s;
  double value = 0.0;
  const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec == std::errc::result_out_of_range) {
    // Overflow is inf in Python (no value here); underflow is a signed 0.
    if (decimal_magnitude(number) > 0) {
      out.kind = FloatKind::kNoValue;
      return out;
    }
    out.kind = FloatKind::kNumber;
    out.value = number[0] == '-' ? -0.0 : 0.0;
    return out;
  }
  if (ec != std::errc() || ptr != number.data() + number.size() || !std::isfinite(value)) return out;
  out.kind = FloatKind::kNumber;
  out.value = value;
  return out;
}

std::optional<std::vector<std::string>> parse_list(std::string_view text, bool allow_integers, std::string& why) {
  return ListReader(text, allow_integers, why).read();
}

}  // namespace anchors::python_literals
