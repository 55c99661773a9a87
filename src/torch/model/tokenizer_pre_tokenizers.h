#pragma once
// Pre-tokenizers (internal): how a normalized piece is cut into the words the
// model sees. The Split regexes of GPT-2, Qwen2 and Llama-3 are matched by
// hand-written matchers (std::regex has no \p{L}); any other regex is refused
// at load.
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer_normalized_text.h"

namespace anchors::model::tokenizer_detail {

// The pre-tokenizer regexes we implement, recognised by their exact text.
enum class SplitRegex {
  kGpt2,    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kQwen2,   // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kLlama3,  // as kQwen2 with \p{N}{1,3}
};
std::optional<SplitRegex> recognize_split_regex(std::string_view pattern);
const char* split_regex_name(SplitRegex regex);

// Byte ranges of the successive non-overlapping matches in `text` (valid UTF-8).
std::vector<std::pair<std::size_t, std::size_t>> find_regex_matches(SplitRegex regex, std::string_view text);

enum class SplitBehavior { kRemoved, kIsolated };

struct PreTokenizerStep {
  enum class Kind {
    kSplitRegex,       // Split{pattern: {Regex}, behavior, invert: false}
    kSplitLiteral,     // Split{pattern: {String}, behavior, invert: false}
    kByteLevel,        // ByteLevel{add_prefix_space, use_regex}: must be the last step
    kBert,             // BertPreTokenizer: whitespace removed, punctuation isolated
    kWhitespaceSplit,  // WhitespaceSplit: whitespace removed
  };
  Kind kind = Kind::kBert;
  SplitRegex regex = SplitRegex::kGpt2;
  std::string literal;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool add_prefix_space = false;
  bool use_regex = false;
};

// A pre-tokenized word: bytes [begin, end) of a normalized text.
struct Word {
  const NormalizedText* text = nullptr;
  std::size_t begin = 0;
  std::size_t end = 0;
  std::string_view bytes() const { return std::string_view(text->text()).substr(begin, end - begin); }
};

// Cuts one piece into words. Words are ranges of `piece` itself where the
// steps only split (no per-word copies); a ByteLevel step that prepends a
// space makes a modified copy, kept in `owned` (a deque: addresses stay valid).
void pre_tokenize(const std::vector<PreTokenizerStep>& steps, const NormalizedText& piece,
                  std::deque<NormalizedText>& owned, std::vector<Word>& words);

}  // namespace anchors::model::tokenizer_detail
