#pragma once
// Random texts for the property tests of utf8_test.cpp and segmentation_test.cpp.
// A text is built as a list of characters, each of which is exactly one code
// point under utf8.h's rules whatever surrounds it (complete well-formed
// sequences, and invalid bytes that can neither start nor end a sequence), so
// a test knows every character boundary without decoding anything.
#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace anchors_test {

struct RandomText {
  std::vector<std::string> chars;  // one code point each
  std::string text;                // the characters concatenated
};

// Every character Python's str.strip() removes, UTF-8 encoded.
inline const std::vector<std::string>& python_whitespace() {
  static const std::vector<std::string> spaces = {
      "\t", "\n", "\v", "\f", "\r", "\x1c", "\x1d", "\x1e", "\x1f", " ", "\u0085", "\u00a0",
      "\u1680", "\u2000", "\u2001", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006", "\u2007",
      "\u2008", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"};
  return spaces;
}

// A random text of about `max_chars` characters (never more than max_chars + 12):
// words of ASCII and multi-byte letters, terminators ("." "?" "!" "。"), spaces
// (mostly ' ', some '\n', '\t', '\r' and Unicode whitespace), paragraph breaks
// ("\n\n", "\r\n\r\n"), invalid bytes and <think> / </think> tags.
inline RandomText random_text(std::mt19937& rng, std::size_t max_chars) {
  static const std::vector<std::string> letters = {
      "a", "b", "e", "Z", "7", ",", ":", "(", "\u00e9", "\u00d7", "\u4e2d", "\U0001F600",
      "\u200b", "\ufeff"};
  static const std::vector<std::string> terminators = {".", ".", "?", "!", "\u3002"};
  static const std::vector<std::string> spaces = {" ",      " ",      " ",      " ",      "\n",
                                                  "\t",     "\r",     "\u00a0", "\u3000", "\u2028",
                                                  "\u0085", "\x0b"};
  // Continuation bytes, C0/C1 and F5..FF: nothing here is an incomplete lead
  // byte, so each of these stays one invalid character next to anything.
  static const std::vector<std::string> invalid = {"\x80", "\xbf", "\xc0", "\xc1", "\xf5", "\xff"};
  static const std::vector<std::string> breaks = {"\n\n", "\r\n\r\n", "\n\n\n", " \n\n "};
  static const std::vector<std::string> tags = {"<think>", "</think>"};

  const auto pick = [&](const std::vector<std::string>& from) -> const std::string& {
    return from[std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(rng)];
  };
  const auto percent = [&]() { return std::uniform_int_distribution<int>(0, 99)(rng); };
  RandomText t;
  const auto add_ascii = [&](const std::string& s) {
    for (char c : s) t.chars.emplace_back(1, c);
  };
  const std::size_t target = std::uniform_int_distribution<std::size_t>(0, max_chars)(rng);
  while (t.chars.size() < target) {
    const int kind = percent();
    if (kind < 40) {
      const int n = std::uniform_int_distribution<int>(1, 12)(rng);
      for (int k = 0; k < n; ++k) t.chars.push_back(pick(letters));
    } else if (kind < 60) {
      t.chars.push_back(pick(terminators));
    } else if (kind < 85) {
      t.chars.push_back(pick(spaces));
    } else if (kind < 92) {
      add_ascii(pick(breaks));
    } else if (kind < 97) {
      t.chars.push_back(pick(invalid));
    } else {
      add_ascii(pick(tags));
    }
  }
  for (const std::string& c : t.chars) t.text += c;
  return t;
}

}  // namespace anchors_test
