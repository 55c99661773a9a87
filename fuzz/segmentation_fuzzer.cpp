// Segmentation (core/segmentation.h) and the offset conversions every result
// file goes through (core/utf8.h). split_sentences never fails (any bytes
// are text); its spans must be what Trace::validate and the result writer
// accept; token spans are assigned in order.
//
// Input: four option bytes, then the text
//   byte 0  bit 0 think_only, bit 1 split_paragraphs, bit 2 assign token spans
//   byte 1  merge_shorter_than (% 32)
//   byte 2  drop_shorter_than (% 16)
//   byte 3  sentence_terminators: one of ".?!", ".", "", ".?!;:" and "。？！"
#include <cstdint>
#include <string>

#include "anchors/core/segmentation.h"
#include "anchors/core/trace.h"
#include "anchors/core/utf8.h"
#include "fuzz_common.h"

namespace {

using namespace anchors;

// A stand-in tokenizer: one token per space-separated word.
std::size_t count_words(std::string_view text) {
  std::size_t words = 0;
  bool in_word = false;
  for (const char c : text) {
    if (c == ' ') in_word = false;
    else if (!in_word) in_word = true, ++words;
  }
  return words;
}

void check_sentences(const std::string& text, const std::vector<Sentence>& sentences) {
  Trace trace;
  trace.text = text;
  trace.sentences = sentences;
  trace.validate();  // indices, spans inside the text on character boundaries, in order
  utf8::Cursor cursor(text);
  for (const Sentence& s : sentences) {
    FUZZ_CHECK(!s.text.empty() && !s.chars.empty(), "an empty sentence");
    for (const std::size_t byte : {s.chars.begin, s.chars.end}) {
      const std::size_t cp = cursor.codepoint_offset(byte);
      FUZZ_CHECK(cp == utf8::codepoint_offset(text, byte), "Cursor and codepoint_offset disagree");
      FUZZ_CHECK(utf8::byte_offset(text, cp) == byte, "byte_offset(codepoint_offset(b)) != b");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  static const char* const kTerminators[] = {".?!", ".", "", ".?!;:", "\xE3\x80\x82\xEF\xBC\x9F\xEF\xBC\x81"};
  SegmentOptions options;
  options.think_only = (data[0] & 1) != 0;
  options.split_paragraphs = (data[0] & 2) != 0;
  const bool tokens = (data[0] & 4) != 0;
  options.merge_shorter_than = data[1] % 32;
  options.drop_shorter_than = data[2] % 16;
  options.sentence_terminators = kTerminators[data[3] % 5];
  const std::string text(fuzz::text_of(data + 4, size - 4));
  fuzz::expect_no_exception("segmentation", [&] {
    std::vector<Sentence> sentences = split_sentences(text, options);
    check_sentences(text, sentences);
    // Token spans cost O(sentences x text) by design (prefix semantics,
    // segmentation.h): only short texts, so that no input runs past -timeout.
    if (!tokens || text.size() > 16384) return;
    assign_token_spans(sentences, text, count_words, 3);
    for (std::size_t i = 0; i < sentences.size(); ++i) {
      FUZZ_CHECK(sentences[i].tokens && sentences[i].tokens->begin >= 3 &&
                     sentences[i].tokens->begin <= sentences[i].tokens->end,
                 "token span");
      if (i > 0) FUZZ_CHECK(sentences[i - 1].tokens->end <= sentences[i].tokens->end, "token spans out of order");
    }
  });
  return 0;
}
