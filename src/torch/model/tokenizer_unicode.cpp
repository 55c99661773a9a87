// Lookups over the generated tables of tokenizer_unicode_tables.inc.
#include "tokenizer_unicode.h"

#include <algorithm>
#include <array>

namespace anchors::model::tokenizer_detail {
namespace {

#include "tokenizer_unicode_tables.inc"

constexpr char32_t kHangulSBase = 0xAC00, kHangulLBase = 0x1100, kHangulVBase = 0x1161, kHangulTBase = 0x11A7;
constexpr char32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr char32_t kHangulNCount = kHangulVCount * kHangulTCount;
constexpr char32_t kHangulSCount = kHangulLCount * kHangulNCount;

// Properties of the code points below 0x80 are looked up on every character
// of mostly-ASCII traces: a direct table instead of a binary search.
const std::array<std::uint8_t, 128>& ascii_flags() {
  static const std::array<std::uint8_t, 128> table = [] {
    std::array<std::uint8_t, 128> t{};
    std::size_t run = 0;
    for (char32_t c = 0; c < 128; ++c) {
      while (run + 1 < std::size(kPropertyRuns) && kPropertyRuns[run + 1].first <= c) ++run;
      t[c] = kPropertyRuns[run].flags;
    }
    return t;
  }();
  return table;
}

std::uint8_t flags_of(char32_t c) {
  if (c < 128) return ascii_flags()[c];
  const auto* end = std::end(kPropertyRuns);
  const auto* it = std::upper_bound(std::begin(kPropertyRuns), end, c,
                                    [](char32_t v, const PropertyRun& r) { return v < r.first; });
  return it == std::begin(kPropertyRuns) ? 0 : (it - 1)->flags;
}

const Mapping* find_mapping(const Mapping* begin, const Mapping* end, char32_t c) {
  const auto* it = std::lower_bound(begin, end, c, [](const Mapping& m, char32_t v) { return m.code_point < v; });
  return it != end && it->code_point == c ? it : nullptr;
}

// Length of the valid UTF-8 prefix (1..4) of the sequence at s[i], or the
// length of its maximal invalid subpart as a negative number.
int utf8_sequence(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  int need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k <= need; ++k) {
    if (i + k >= s.size()) return -k;
    const auto b = static_cast<unsigned char>(s[i + k]);
    const unsigned char first_lo = k == 1 ? lo : 0x80, first_hi = k == 1 ? hi : 0xBF;
    if (b < first_lo || b > first_hi) return -k;
  }
  return need + 1;
}

}  // namespace

char32_t next_code_point(std::string_view s, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  const std::size_t width = utf8_width_from_lead(b0);
  char32_t c = width == 2 ? (b0 & 0x1F) : width == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (std::size_t k = 1; k < width; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += width;
  return c;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::size_t first_invalid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const int n = utf8_sequence(s, i);
    if (n < 0) return i;
    i += static_cast<std::size_t>(n);
  }
  return s.size();
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  std::size_t i = 0;
  while (i < bytes.size()) {
    const int n = utf8_sequence(bytes, i);
    if (n > 0) {
      out.append(bytes.substr(i, static_cast<std::size_t>(n)));
      i += static_cast<std::size_t>(n);
    } else {
      out.append("\xEF\xBF\xBD");
      i += static_cast<std::size_t>(-n);
    }
  }
  return out;
}

bool is_letter(char32_t c) { return flags_of(c) & kLetter; }
bool is_number(char32_t c) { return flags_of(c) & kNumber; }
bool is_white_space(char32_t c) { return flags_of(c) & kWhiteSpace; }
bool is_word_char(char32_t c) { return flags_of(c) & kWord; }

bool is_bert_control(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  return flags_of(c) & kBertControl;
}
bool is_bert_whitespace(char32_t c) { return c == '\t' || c == '\n' || c == '\r' || is_white_space(c); }
bool is_bert_punctuation(char32_t c) { return flags_of(c) & kBertPunctuation; }
bool is_bert_nonspacing_mark(char32_t c) { return flags_of(c) & kBertNonspacingMark; }

bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

std::uint8_t combining_class(char32_t c) {
  if (c < 0x300) return 0;
  const auto* end = std::end(kCombiningClasses);
  const auto* it = std::lower_bound(std::begin(kCombiningClasses), end, c,
                                    [](const CombiningClass& e, char32_t v) { return e.code_point < v; });
  return it != end && it->code_point == c ? it->ccc : 0;
}

void append_canonical_decomposition(char32_t c, std::u32string& out) {
  if (c < 0xC0) {
    out.push_back(c);
    return;
  }
  if (c >= kHangulSBase && c < kHangulSBase + kHangulSCount) {
    const char32_t s = c - kHangulSBase;
    out.push_back(kHangulLBase + s / kHangulNCount);
    out.push_back(kHangulVBase + (s % kHangulNCount) / kHangulTCount);
    if (s % kHangulTCount != 0) out.push_back(kHangulTBase + s % kHangulTCount);
    return;
  }
  if (const Mapping* m = find_mapping(std::begin(kDecompositions), std::end(kDecompositions), c)) {
    out.append(kDecompositionsPool + m->offset, m->length);
  } else {
    out.push_back(c);
  }
}

char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kHangulLBase && a < kHangulLBase + kHangulLCount && b >= kHangulVBase && b < kHangulVBase + kHangulVCount) {
    return kHangulSBase + ((a - kHangulLBase) * kHangulVCount + (b - kHangulVBase)) * kHangulTCount;
  }
  if (a >= kHangulSBase && a < kHangulSBase + kHangulSCount && (a - kHangulSBase) % kHangulTCount == 0 &&
      b > kHangulTBase && b < kHangulTBase + kHangulTCount) {
    return a + (b - kHangulTBase);
  }
  const auto* end = std::end(kCompositions);
  const auto* it = std::lower_bound(std::begin(kCompositions), end, std::pair<char32_t, char32_t>(a, b),
                                    [](const Composition& e, const std::pair<char32_t, char32_t>& v) {
                                      return e.first != v.first ? e.first < v.first : e.second < v.second;
                                    });
  return it != end && it->first == a && it->second == b ? it->composite : 0;
}

void append_lowercase(char32_t c, std::u32string& out) {
  if (c < 0x80) {
    out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return;
  }
  if (const Mapping* m = find_mapping(std::begin(kLowercase), std::end(kLowercase), c)) {
    out.append(kLowercasePool + m->offset, m->length);
  } else {
    out.push_back(c);
  }
}

}  // namespace anchors::model::tokenizer_detail
