#pragma once
// Splitting a reasoning trace into sentences with the reference chunker's
// rules (docs/design.md §3 "Segmentation"); each rule can be switched or tuned.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "anchors/core/sentence.h"

namespace anchors {

struct SegmentOptions {
  // Only segment the text after `<think>` (if present) and before `</think>` (if present).
  bool think_only = true;
  // A boundary falls at the first '\n' of "\n\n" (and the first '\r' of "\r\n\r\n").
  bool split_paragraphs = true;
  // A boundary falls after any of these characters when followed by ' ' or '\n'.
  std::string sentence_terminators = ".?!";
  // Chunks shorter than this many code points are merged into the next one
  // (the last one into the previous), joined by one space. 0 disables merging.
  std::size_t merge_shorter_than = 10;
  // After merging, chunks shorter than this many code points are dropped (the
  // analysis of the reference code does this). 0 keeps everything.
  std::size_t drop_shorter_than = 4;
};

// Sentences of `text`, indexed 0..n-1, each with the exact byte span of `text`
// it covers, from its first to its last non-whitespace character (a merged
// sentence spans the gap between its parts; its `text` is the parts joined by
// one space, so text may differ from the span's bytes). Spans index the
// original `text`, also when only the <think> part is segmented.
// Lengths and whitespace are Unicode code points as in Python (len(),
// str.strip()); a byte that is not valid UTF-8 counts as one character that
// is neither whitespace nor a terminator (never an error).
// Empty or all-whitespace input gives an empty list. See docs/segmentation.md.
// Cost: linear in text.size() (one pass to cut, one to merge), whatever the
// number or length of the sentences.
std::vector<Sentence> split_sentences(std::string_view text, const SegmentOptions& options = {});

// Assigns token spans with prefix-tokenisation semantics:
// begin = token_offset + count_tokens(text[0, chars.begin)),
// end   = token_offset + count_tokens(text[0, chars.end)).
// anchors::Error naming the sentence if a char span is reversed, lies outside
// `text` or does not start and end on UTF-8 character boundaries; all spans are
// checked before any is assigned, so on error `sentences` is unchanged.
// Cost: the boundary check is one pass over `text` for spans in order; then
// count_tokens is called on up to two prefixes per sentence (prefix lengths
// sum to O(sentences x text), the price of prefix semantics).
void assign_token_spans(std::vector<Sentence>& sentences, std::string_view text,
                        const std::function<std::size_t(std::string_view)>& count_tokens,
                        std::int64_t token_offset = 0);

}  // namespace anchors
