#pragma once
// The loaded tokenizer (internal): HF's pipeline of added-token extraction,
// normalizer, pre-tokenizer, model, post-processor and decoder, each reduced
// to the components we implement. Built by tokenizer_json.cpp.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "anchors/model/tokenizer.h"
#include "tokenizer_models.h"
#include "tokenizer_normalized_text.h"
#include "tokenizer_pre_tokenizers.h"

namespace anchors::model::tokenizer_detail {

enum class NormalizerStep { kNfc, kNfd, kLowercase, kBertCleanText, kBertPadCjk, kBertStripAccents };

void apply_normalizer(const std::vector<NormalizerStep>& steps, NormalizedText& text);

// Leftmost-longest matching of the added tokens of one pass (HF uses an
// Aho-Corasick automaton in LeftmostLongest mode; there are few patterns).
class AddedTokenMatcher {
 public:
  struct Match {
    std::size_t begin;
    std::size_t end;
    std::size_t token;  // index into the pattern owner's token list
  };
  void add(std::string pattern, std::size_t token);
  // Successive non-overlapping leftmost-longest matches.
  std::vector<Match> find(std::string_view text) const;
  bool empty() const { return count_ == 0; }

 private:
  // Patterns by first byte, longest first.
  std::vector<std::pair<std::string, std::size_t>> by_first_byte_[256];
  std::size_t count_ = 0;
};

// Post-processing, flattened: trim steps (ByteLevel / Roberta trim_offsets)
// and wrap steps (TemplateProcessing, BertProcessing, Roberta's <s> ... </s>).
struct PostStep {
  enum class Kind { kTrimOffsets, kWrap };
  Kind kind = Kind::kWrap;
  bool add_prefix_space = false;              // kTrimOffsets
  std::vector<std::int64_t> prefix_ids;       // kWrap
  std::vector<std::string> prefix_tokens;
  std::vector<std::int64_t> suffix_ids;
  std::vector<std::string> suffix_tokens;
};

struct DecoderStep {
  enum class Kind { kByteLevel, kWordPiece };
  Kind kind = Kind::kByteLevel;
  std::string prefix = "##";  // kWordPiece
  bool cleanup = true;
};

class Pipeline {
 public:
  std::string source;
  std::optional<std::vector<NormalizerStep>> normalizer;
  std::vector<PreTokenizerStep> pre_tokenizer;
  std::variant<std::monostate, BytePairModel, WordPieceModel> model;
  std::vector<AddedToken> added_tokens;
  std::vector<PostStep> post_processor;
  std::optional<std::vector<DecoderStep>> decoder;
  std::optional<std::int64_t> bos_id;
  std::optional<std::int64_t> eos_id;
  std::optional<std::size_t> max_length;

  // Call once the fields above are set: indexes the added tokens.
  void finish();

  Tokenizer::Encoding encode(std::string_view text, bool add_special_tokens) const;
  std::string decode(const std::vector<std::int64_t>& ids, bool skip_special_tokens) const;
  std::optional<std::int64_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(std::int64_t id) const;  // nullptr if unknown
  const AddedToken* added_token(std::int64_t id) const;
  const Vocabulary& vocabulary() const;
  std::int64_t vocab_size() const;
  std::string kind() const;

 private:
  struct Token {
    std::int64_t id;
    Alignment offsets;
    std::string value;  // the token's text, filled only when trim steps need it
  };
  void model_tokenize(std::string_view word, std::vector<ModelToken>& out) const;
  void split_added(const NormalizedText& piece, const AddedTokenMatcher& matcher,
                   std::vector<std::pair<NormalizedText, std::optional<std::size_t>>>& out) const;
  void trim_offsets(std::vector<Token>& tokens, bool add_prefix_space, std::string_view text) const;

  std::unordered_map<std::int64_t, std::size_t> added_by_id_;
  std::unordered_map<std::string, std::size_t> added_by_content_;
  std::vector<std::string> added_decode_form_;  // normalized content for normalized tokens (HF decodes that)
  AddedTokenMatcher raw_matcher_;
  AddedTokenMatcher normalized_matcher_;
  bool needs_token_values_ = false;
};

}  // namespace anchors::model::tokenizer_detail
