// The authors' normalize_latex (utils.py), step for step, for compat mode:
// normalize_answer_reference in include/anchors/core/answers.h. Its flaws are
// kept on purpose (docs/answers.md lists them); normalize_answer is the
// default.
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "anchors/core/answers.h"
#include "answers_internal.h"

namespace anchors {

using namespace answers_internal;  // the character classes and tokens shared by the answer sources

namespace {

// Python's str.isspace() on what UTF-8 sequence starts at s[i]: its byte
// length, or 0 if it is not whitespace. (The reference strips and deletes
// \s+, which in Python 3 includes \x1c-\x1f and Unicode spaces.)
std::size_t python_space_length(std::string_view s, std::size_t i) {
  const char c = s[i];
  if (is_space(c) || (c >= '\x1c' && c <= '\x1f')) return 1;
  static constexpr std::string_view kUnicodeSpaces[] = {
      "\u0085", "\u00a0", "\u1680", "\u2000", "\u2001", "\u2002", "\u2003", "\u2004",
      "\u2005", "\u2006", "\u2007", "\u2008", "\u2009", "\u200a", "\u2028", "\u2029",
      "\u202f", "\u205f", "\u3000"};
  if (static_cast<unsigned char>(c) < 0x80) return 0;
  for (const auto u : kUnicodeSpaces) {
    if (s.compare(i, u.size(), u) == 0) return u.size();
  }
  return 0;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  for (std::size_t hit = s.find(from); hit != std::string::npos; hit = s.find(from, i)) {
    out.append(s, i, hit - i);
    out += to;
    i = hit + from.size();
  }
  out.append(s, i, std::string::npos);
  return out;
}

// re.sub(r"(\d+)[\.,](\d+)", r"\1.\2", s): left to right, non-overlapping.
std::string reference_decimal(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (!is_digit(s[i])) {
      out += s[i++];
      continue;
    }
    std::size_t j = i;
    while (j < s.size() && is_digit(s[j])) ++j;
    if (j + 1 < s.size() && (s[j] == '.' || s[j] == ',') && is_digit(s[j + 1])) {
      std::size_t k = j + 1;
      while (k < s.size() && is_digit(s[k])) ++k;
      out.append(s, i, j - i);
      out += '.';
      out.append(s, j + 1, k - j - 1);
      i = k;
    } else {
      out.append(s, i, j - i);
      i = j;
    }
  }
  return out;
}

// re.sub(prefix + r"\{([^{}]+)\}", r"\1", s) for prefix "" (any brace group
// without nested braces), "\\text" or "\\mathrm": one pass, no rescanning.
std::string reference_unwrap(const std::string& s, std::string_view prefix) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, prefix.size(), prefix) == 0 && i + prefix.size() < s.size() &&
        s[i + prefix.size()] == '{') {
      const std::size_t open = i + prefix.size();
      std::size_t j = open + 1;
      while (j < s.size() && s[j] != '{' && s[j] != '}') ++j;
      if (j < s.size() && s[j] == '}' && j > open + 1) {
        out.append(s, open + 1, j - open - 1);
        i = j + 1;
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

// re.sub(r"([a-z]+)\\+\s*(\d+)", r"\1\2", s) once whitespace is gone: the
// backslashes between a lowercase word and a number are dropped.
std::string reference_date(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] >= 'a' && s[i] <= 'z') {
      std::size_t j = i;
      while (j < s.size() && s[j] >= 'a' && s[j] <= 'z') ++j;
      std::size_t k = j;
      while (k < s.size() && s[k] == '\\') ++k;
      if (k > j && k < s.size() && is_digit(s[k])) {
        std::size_t m = k;
        while (m < s.size() && is_digit(s[m])) ++m;
        out.append(s, i, j - i);
        out.append(s, k, m - k);
        i = m;
        continue;
      }
      out.append(s, i, j - i);
      i = j;
      continue;
    }
    out += s[i++];
  }
  return out;
}

}  // namespace

std::string normalize_answer_reference(std::string_view answer) {
  // strip() and lower()
  std::size_t begin = 0;
  std::size_t end = answer.size();
  while (begin < end) {
    const std::size_t n = python_space_length(answer, begin);
    if (n == 0) break;
    begin += n;
  }
  while (end > begin) {
    std::size_t n = 0;  // the space sequence ending at `end`, if any
    for (std::size_t len = 1; len <= 3 && len <= end - begin && n == 0; ++len) {
      if (python_space_length(answer, end - len) == len) n = len;
    }
    if (n == 0) break;
    end -= n;
  }
  std::string s;
  s.reserve(end - begin);
  for (std::size_t i = begin; i < end; ++i) {
    const char c = answer[i];
    s += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  s = replace_all(std::move(s), "dfrac", "frac");
  s = replace_all(std::move(s), "tfrac", "frac");
  {  // re.sub(r"\s+", "", s)
    std::string t;
    t.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
      const std::size_t n = python_space_length(s, i);
      if (n) {
        i += n;
      } else {
        t += s[i++];
      }
    }
    s = std::move(t);
  }
  s = replace_all(std::move(s), "\\%", "");
  s = replace_all(std::move(s), "{,}", "");
  s = replace_all(std::move(s), "\\times", "*");
  s = replace_all(std::move(s), "\\cdot", "*");
  s = reference_decimal(s);
  s = reference_unwrap(s, "");
  s = replace_all(std::move(s), "\\pi", "pi");
  s = reference_unwrap(s, "\\text");
  s = reference_unwrap(s, "\\mathrm");
  s = reference_date(s);
  return replace_all(std::move(s), "\\text", "");
}

}  // namespace anchors
