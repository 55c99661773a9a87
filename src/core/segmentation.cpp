// Sentence segmentation with the reference chunker's rules (docs/design.md §3,
// docs/segmentation.md). The reference works on Python strings, so every
// length, "character" and strip() here is in Unicode code points, while the
// spans we report are byte offsets into the caller's UTF-8 text.
#include "anchors/core/segmentation.h"

#include <fmt/format.h>
#include <string>

#include "anchors/core/error.h"
#include "anchors/core/utf8.h"

namespace anchors {
namespace {

// One decoded character of the input: its code point and its byte length.
// A byte that does not start a well-formed sequence is a character of its own
// (as utf8.h counts it); it gets a value above U+10FFFF so that it is never
// whitespace and only ever equals the same invalid byte.
struct Char {
  char32_t cp;
  std::size_t len;
};

constexpr char32_t kInvalidBase = 0x110000;

Char decode(std::string_view text, std::size_t pos) {
  // utf8::byte_offset decides the length of the first character (validity
  // rules live in one place); a sequence is never longer than 4 bytes.
  const std::string_view window = text.substr(pos, 4);
  const std::size_t len = utf8::byte_offset(window, 1);
  const auto b = [&](std::size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(window[k])); };
  switch (len) {
    case 2: return {((b(0) & 0x1F) << 6) | (b(1) & 0x3F), 2};
    case 3: return {((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F), 3};
    case 4:
      return {((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F), 4};
    default: return {b(0) < 0x80 ? b(0) : kInvalidBase + b(0), 1};
  }
}

// Exactly the characters Python's str.strip() removes (str.isspace()).
bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

bool starts_with_at(std::string_view text, std::size_t pos, std::size_t end, std::string_view s) {
  return end - pos >= s.size() && text.compare(pos, s.size(), s) == 0;
}

// A chunk under construction: its stripped text and the byte span it covers.
struct Piece {
  std::string text;
  CharSpan chars;
  std::size_t length;  // code points of `text`
};

// The byte range [begin, end) of `text` that the reference chunker sees: with
// think_only, what follows the first "<think>" and, within that, what precedes
// the first "</think>"; then stripped of surrounding whitespace.
//
// The reference keeps `text.split("<think>")[1]`, i.e. it would also cut at a
// *second* "<think>"; we keep everything after the first one (the intent; no
// reference trace contains a second tag). See docs/segmentation.md.
CharSpan content_range(std::string_view text, bool think_only) {
  std::size_t begin = 0;
  std::size_t end = text.size();
  if (think_only) {
    constexpr std::string_view kOpen = "<think>";
    constexpr std::string_view kClose = "</think>";
    if (const std::size_t open = text.find(kOpen); open != std::string_view::npos) {
      begin = open + kOpen.size();
    }
    if (const std::size_t close = text.find(kClose, begin); close != std::string_view::npos) {
      end = close;
    }
  }
  // Strip: leading whitespace is skipped here; trailing whitespace never ends
  // up inside a chunk's stripped span, so only the scan bound matters, and
  // trimming it keeps "is this the last character" identical to the reference.
  std::size_t first = end;
  std::size_t last_end = begin;
  for (std::size_t pos = begin; pos < end;) {
    const Char c = decode(text, pos);
    if (!is_space(c.cp)) {
      if (first == end) first = pos;
      last_end = pos + c.len;
    }
    pos += c.len;
  }
  if (first == end) return {begin, begin};
  return {first, last_end};
}

// Raw chunks: the text is cut at paragraph and sentence boundaries and each
// piece stripped; whitespace-only pieces are skipped.
std::vector<Piece> raw_chunks(std::string_view text, const CharSpan& range,
                              const SegmentOptions& options) {
  std::vector<char32_t> terminators;
  for (std::size_t pos = 0; pos < options.sentence_terminators.size();) {
    const Char c = decode(options.sentence_terminators, pos);
    terminators.push_back(c.cp);
    pos += c.len;
  }
  const auto is_terminator = [&](char32_t cp) {
    for (char32_t t : terminators) {
      if (t == cp) return true;
    }
    return false;
  };

  std::vector<Piece> pieces;
  constexpr std::size_t kNone = std::string_view::npos;
  std::size_t first = kNone;  // first non-whitespace byte of the current chunk
  std::size_t last_end = 0;   // end of its last non-whitespace character
  const std::size_t end = range.end;
  const auto push = [&]() {
    if (first == kNone) return;  // whitespace only: the reference keeps accumulating
    const std::string_view body = text.substr(first, last_end - first);
    pieces.push_back({std::string(body), {first, last_end}, utf8::length(body)});
    first = kNone;
  };

  for (std::size_t pos = range.begin; pos < end;) {
    const Char c = decode(text, pos);
    if (!is_space(c.cp)) {
      if (first == kNone) first = pos;
      last_end = pos + c.len;
    }
    // The reference tests the pattern at the current character, which it has
    // already appended: the first '\n' (or '\r') of the pair stays in the chunk.
    const bool paragraph_end = options.split_paragraphs &&
                               (starts_with_at(text, pos, end, "\n\n") ||
                                starts_with_at(text, pos, end, "\r\n\r\n"));
    const std::size_t next = pos + c.len;
    const bool sentence_end = next < end && is_terminator(c.cp) &&
                              (text[next] == ' ' || text[next] == '\n');
    if (paragraph_end || sentence_end) push();
    pos = next;
  }
  push();
  return pieces;
}

// Appends `next` to `into` the way the reference joins chunks: one space between.
void join(Piece& into, const Piece& next) {
  into.text += ' ';
  into.text += next.text;
  into.chars.end = next.chars.end;
  into.length += 1 + next.length;
}

// The reference's merge loop: a chunk shorter than `threshold` code points is
// prepended (with one space) to the next chunk, which is then re-examined; the
// last chunk is appended to the previous one; a lone chunk stays as it is.
//
// The reference erases the short chunk from the list at every merge and
// prepends to the next chunk's string, which is quadratic on a text of many
// short sentences. Here the chunks are compacted in place in one pass: the
// chunk being built at pieces[out] absorbs (appends) following chunks until it
// is long enough; the result is the same list of texts, spans and lengths.
void merge_short(std::vector<Piece>& pieces, std::size_t threshold) {
  std::size_t out = 0;    // pieces[0, out) are final
  bool building = false;  // pieces[out] holds a chunk that is still short
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    if (building) {
      join(pieces[out], pieces[i]);
    } else if (out != i) {
      pieces[out] = std::move(pieces[i]);
    }
    building = pieces[out].length < threshold;
    if (!building) ++out;
  }
  if (building) {
    // The last chunk is short: it joins the previous one, which was long
    // enough, unless it is the only one.
    if (out == 0) {
      out = 1;
    } else {
      join(pieces[out - 1], pieces[out]);
    }
  }
  pieces.resize(out);
}

}  // namespace

std::vector<Sentence> split_sentences(std::string_view text, const SegmentOptions& options) {
  const CharSpan range = content_range(text, options.think_only);
  std::vector<Piece> pieces = raw_chunks(text, range, options);
  merge_short(pieces, options.merge_shorter_than);

  std::vector<Sentence> sentences;
  sentences.reserve(pieces.size());
  for (Piece& piece : pieces) {
    if (piece.length < options.drop_shorter_than) continue;
    Sentence s;
    s.index = sentences.size();
    s.text = std::move(piece.text);
    s.chars = piece.chars;
    sentences.push_back(std::move(s));
  }
  return sentences;
}

void assign_token_spans(std::vector<Sentence>& sentences, std::string_view text,
                        const std::function<std::size_t(std::string_view)>& count_tokens,
                        std::int64_t token_offset) {
  if (!count_tokens) throw Error("assign_token_spans: count_tokens is empty");
  // Check every span before tokenising anything, so a bad list leaves the
  // sentences untouched. One cursor for all spans: in-order spans are checked
  // in one pass over the text.
  utf8::Cursor boundaries(text);
  for (const Sentence& s : sentences) {
    const std::string where = fmt::format("assign_token_spans: sentence {}: char span [{}, {})",
                                          s.index, s.chars.begin, s.chars.end);
    if (s.chars.begin > s.chars.end) throw Error(where + " ends before it begins");
    if (s.chars.end > text.size()) {
      throw Error(fmt::format("{} lies outside the text ({} bytes)", where, text.size()));
    }
    for (std::size_t offset : {s.chars.begin, s.chars.end}) {
      try {
        boundaries.codepoint_offset(offset);
      } catch (const Error&) {
        throw Error(
            fmt::format("{}: byte {} is not on a UTF-8 character boundary", where, offset));
      }
    }
  }
  // Prefix tokenisation: a span's token positions are the token counts of the
  // text before its first and after its last byte. Consecutive sentences often
  // share a prefix length, so remember the last count.
  std::size_t cached_offset = std::string_view::npos;
  std::size_t cached_count = 0;
  const auto tokens_before = [&](std::size_t offset) {
    if (offset != cached_offset) {
      cached_count = count_tokens(text.substr(0, offset));
      cached_offset = offset;
    }
    return token_offset + static_cast<std::int64_t>(cached_count);
  };
  for (Sentence& s : sentences) {
    const std::int64_t begin = tokens_before(s.chars.begin);
    const std::int64_t end = tokens_before(s.chars.end);
    s.tokens = TokenSpan{begin, end};
  }
}

}  // namespace anchors
