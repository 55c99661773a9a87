#pragma once
// Unicode data and UTF-8 helpers of the tokenizer (internal). Each predicate
// follows the Unicode version of the HF component it mirrors; the tables are
// generated and checked against HF by scripts/gen_unicode_tables.py.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace anchors::model::tokenizer_detail {

// ---- UTF-8 (input already validated) ----
// Decodes the code point at s[i] and advances i past it.
char32_t next_code_point(std::string_view s, std::size_t& i);
void append_utf8(std::string& out, char32_t c);
inline std::size_t utf8_width(char32_t c) { return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; }
// Byte length of the UTF-8 sequence starting with lead byte b.
inline std::size_t utf8_width_from_lead(unsigned char b) {
  return b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : 4;
}
// Byte offset of the first invalid UTF-8 sequence in s, or s.size() if valid.
std::size_t first_invalid_utf8(std::string_view s);
// Bytes to text the way Rust's String::from_utf8_lossy does: each maximal
// invalid subsequence becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// ---- regex classes of the pre-tokenizer patterns (oniguruma, Unicode 16.0) ----
bool is_letter(char32_t c);       // \p{L}
bool is_number(char32_t c);       // \p{N}
bool is_white_space(char32_t c);  // \s, and Rust's char::is_whitespace
// \w of the Rust regex crate (Alphabetic, M, Nd, Pc, Join_Control), for
// single_word added tokens.
bool is_word_char(char32_t c);

// ---- BERT (unicode_categories crate, Unicode 8.0) ----
bool is_bert_control(char32_t c);       // Cc|Cf|Co but \t \n \r
bool is_bert_whitespace(char32_t c);    // \t \n \r or White_Space
bool is_bert_punctuation(char32_t c);   // ASCII punctuation or P*
bool is_bert_nonspacing_mark(char32_t c);  // Mn
bool is_cjk_ideograph(char32_t c);      // the CJK blocks BERT pads with spaces

// ---- canonical normalization (unicode-normalization-alignments, Unicode 9.0) ----
std::uint8_t combining_class(char32_t c);
// Appends the full canonical decomposition of c (c itself if none; Hangul
// syllables algorithmically).
void append_canonical_decomposition(char32_t c, std::u32string& out);
// The primary composite of (a, b), or 0 if none.
char32_t compose_pair(char32_t a, char32_t b);

// ---- case (Rust std char::to_lowercase) ----
void append_lowercase(char32_t c, std::u32string& out);

}  // namespace anchors::model::tokenizer_detail
