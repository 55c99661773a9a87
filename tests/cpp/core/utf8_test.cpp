// utf8::length / is_valid / codepoint_offset / byte_offset: well-formed
// sequences at every length boundary, malformed input (one character per bad
// byte, like Python's surrogateescape), round trips and range errors; and
// utf8::Cursor against those per-offset conversions on random text.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "anchors/core/error.h"
#include "anchors/core/utf8.h"
#include "random_text.h"

namespace {

namespace utf8 = anchors::utf8;

TEST(Utf8, LengthCountsCodePoints) {
  EXPECT_EQ(utf8::length(""), 0u);
  EXPECT_EQ(utf8::length("abc"), 3u);
  EXPECT_EQ(utf8::length("\u00e9"), 1u);             // é, 2 bytes
  EXPECT_EQ(utf8::length("5\u00d73"), 3u);           // ×, 2 bytes
  EXPECT_EQ(utf8::length("\u4e2d\u6587"), 2u);       // CJK, 3 bytes each
  EXPECT_EQ(utf8::length("\U0001F600"), 1u);         // emoji, 4 bytes
  EXPECT_EQ(utf8::length("a\u00e9\u4e2d\U0001F600z"), 5u);
}

TEST(Utf8, EncodingLengthBoundariesAreValid) {
  const std::vector<std::string> one_code_point = {
      std::string("\x00", 1), "\x7f",              // U+0000, U+007F
      "\xc2\x80", "\xdf\xbf",                       // U+0080, U+07FF
      "\xe0\xa0\x80", "\xed\x9f\xbf",               // U+0800, U+D7FF
      "\xee\x80\x80", "\xef\xbf\xbf",               // U+E000, U+FFFF
      "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",       // U+10000, U+10FFFF
  };
  for (const std::string& s : one_code_point) {
    EXPECT_TRUE(utf8::is_valid(s)) << s.size();
    EXPECT_EQ(utf8::length(s), 1u) << s.size();
    EXPECT_EQ(utf8::byte_offset(s, 1), s.size());
    EXPECT_EQ(utf8::codepoint_offset(s, s.size()), 1u);
  }
}

TEST(Utf8, MalformedBytesCountOneEach) {
  struct Case {
    std::string bytes;
    std::size_t length;
  };
  const std::vector<Case> cases = {
      {"\xff", 1},                  // never a UTF-8 byte
      {"\x80\xbf", 2},              // stray continuation bytes
      {"\xc0\xaf", 2},              // overlong '/'
      {"\xe0\x80\xaf", 3},          // overlong, 3 bytes
      {"\xed\xa0\x80", 3},          // UTF-16 surrogate U+D800
      {"\xf4\x90\x80\x80", 4},      // above U+10FFFF
      {"\xf5\x80\x80\x80", 4},      // invalid lead byte
      {"\xe2\x82", 2},              // truncated at the end
      {"abc\xe4\xb8", 5},           // truncated after ASCII
      {"\xe2\x82" "a", 3},          // truncated before ASCII
      {"\xc3\xa9\xff\xc3\xa9", 3},  // é, bad byte, é
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(utf8::is_valid(c.bytes)) << c.length;
    EXPECT_EQ(utf8::length(c.bytes), c.length) << c.length;
    // Every character boundary, including each bad byte, round-trips.
    for (std::size_t k = 0; k <= c.length; ++k) {
      EXPECT_EQ(utf8::codepoint_offset(c.bytes, utf8::byte_offset(c.bytes, k)), k);
    }
  }
  EXPECT_TRUE(utf8::is_valid(""));
  EXPECT_TRUE(utf8::is_valid("plain ascii \u00e9 \U0001F600"));
}

TEST(Utf8, OffsetsRoundTripOnMixedText) {
  const std::string text = "x\u00e9\u00d7\u4e2d\U0001F600 y\xff" "z";
  //                        1  2     2     3     4       1 1 1  1  bytes
  const std::vector<std::size_t> starts = {0, 1, 3, 5, 8, 12, 13, 14, 15};
  ASSERT_EQ(utf8::length(text), starts.size());
  for (std::size_t k = 0; k < starts.size(); ++k) {
    EXPECT_EQ(utf8::byte_offset(text, k), starts[k]) << k;
    EXPECT_EQ(utf8::codepoint_offset(text, starts[k]), k) << k;
  }
  EXPECT_EQ(utf8::byte_offset(text, starts.size()), text.size());
  EXPECT_EQ(utf8::codepoint_offset(text, text.size()), starts.size());
  // Every byte offset that is not a character start is rejected.
  for (std::size_t b = 0; b <= text.size(); ++b) {
    const bool boundary =
        b == text.size() || std::find(starts.begin(), starts.end(), b) != starts.end();
    if (!boundary) {
      EXPECT_THROW(utf8::codepoint_offset(text, b), anchors::Error) << b;
    }
  }
}

TEST(Utf8, OutOfRangeAndMidCharacterOffsetsAreErrors) {
  const std::string text = "a\u00e9b";  // 4 bytes, 3 code points
  try {
    utf8::codepoint_offset(text, 2);
    ADD_FAILURE() << "no error inside é";
  } catch (const anchors::Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte offset 2"), std::string::npos) << e.what();
  }
  try {
    utf8::codepoint_offset(text, 5);
    ADD_FAILURE() << "no error past the end";
  } catch (const anchors::Error& e) {
    EXPECT_NE(std::string(e.what()).find("past the end"), std::string::npos) << e.what();
  }
  try {
    utf8::byte_offset(text, 4);
    ADD_FAILURE() << "no error past the end";
  } catch (const anchors::Error& e) {
    EXPECT_NE(std::string(e.what()).find("code point offset 4"), std::string::npos) << e.what();
  }
  EXPECT_EQ(utf8::byte_offset(text, 3), 4u);
  EXPECT_EQ(utf8::byte_offset("", 0), 0u);
  EXPECT_EQ(utf8::codepoint_offset("", 0), 0u);
  EXPECT_THROW(utf8::byte_offset("", 1), anchors::Error);
}

// What a conversion gives: "=value", or "!message" for an anchors::Error.
std::string outcome(const std::function<std::size_t()>& convert) {
  try {
    return "=" + std::to_string(convert());
  } catch (const anchors::Error& e) {
    return std::string("!") + e.what();
  }
}

// One cursor answers a whole sequence of queries (ascending, then random order,
// both directions mixed, errors included) exactly as the per-offset functions,
// which walk from the start each time, and as the character boundaries the
// text was built from.
TEST(Utf8Cursor, AgreesWithPerOffsetConversionOnRandomText) {
  std::mt19937 rng(2024);
  for (int round = 0; round < 400; ++round) {
    const anchors_test::RandomText t = anchors_test::random_text(rng, 1 + round % 150);
    const std::string& text = t.text;
    // starts[k]: byte offset of character k; starts[n] = text.size().
    std::vector<std::size_t> starts{0};
    for (const std::string& c : t.chars) starts.push_back(starts.back() + c.size());
    const std::size_t n = t.chars.size();
    ASSERT_EQ(utf8::length(text), n);

    const auto expected_codepoint = [&](std::size_t b) {
      const std::string naive = outcome([&] { return utf8::codepoint_offset(text, b); });
      const auto it = std::find(starts.begin(), starts.end(), b);
      if (it != starts.end()) {
        EXPECT_EQ(naive, "=" + std::to_string(it - starts.begin())) << "byte " << b;
      } else {
        EXPECT_EQ(naive[0], '!') << "byte " << b;
      }
      return naive;
    };
    const auto expected_byte = [&](std::size_t k) {
      const std::string naive = outcome([&] { return utf8::byte_offset(text, k); });
      if (k <= n) {
        EXPECT_EQ(naive, "=" + std::to_string(starts[k])) << "code point " << k;
      } else {
        EXPECT_EQ(naive[0], '!') << "code point " << k;
      }
      return naive;
    };

    utf8::Cursor ascending(text);
    for (std::size_t b = 0; b <= text.size() + 2; ++b) {
      EXPECT_EQ(outcome([&] { return ascending.codepoint_offset(b); }), expected_codepoint(b));
    }
    utf8::Cursor by_index(text);
    for (std::size_t k = 0; k <= n + 2; ++k) {
      EXPECT_EQ(outcome([&] { return by_index.byte_offset(k); }), expected_byte(k));
    }
    utf8::Cursor mixed(text);
    for (int q = 0; q < 40; ++q) {
      if (std::uniform_int_distribution<int>(0, 1)(rng) == 0) {
        const std::size_t b = std::uniform_int_distribution<std::size_t>(0, text.size() + 1)(rng);
        EXPECT_EQ(outcome([&] { return mixed.codepoint_offset(b); }), expected_codepoint(b));
      } else {
        const std::size_t k = std::uniform_int_distribution<std::size_t>(0, n + 1)(rng);
        EXPECT_EQ(outcome([&] { return mixed.byte_offset(k); }), expected_byte(k));
      }
    }
  }
}

}  // namespace
