#pragma once
// Tokenizers read from a HF tokenizer.json, reproducing HF `tokenizers` ids
// exactly: byte-level BPE (GPT-2, Qwen2 and Llama-3 pre-tokenizer regexes) and
// WordPiece (BERT). Anything the file asks for that is not implemented here
// (another model type, normalizer, pre-tokenizer, regex, decoder or
// post-processor) is an anchors::Error at load naming the file and the
// component, never a silently different tokenisation. See docs/tokenizers.md.
//
// No LibTorch types: ids are plain int64 vectors.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "anchors/core/span.h"

namespace anchors::model {

// An entry of tokenizer.json's "added_tokens": matched in the input before the
// model runs (longest first), with HF's flags.
struct AddedToken {
  std::int64_t id = 0;
  std::string content;
  bool special = false;      // skipped by decode(..., skip_special_tokens=true)
  bool single_word = false;  // only matches when not inside a word (\w on both sides)
  bool lstrip = false;       // swallows the whitespace on its left
  bool rstrip = false;       // swallows the whitespace on its right
  bool normalized = false;   // matched against the normalized text instead of the raw input
};

// Byte offsets of an encoding of `text` as code point offsets (what Python's
// text[begin:end] and HF's Python offsets use), in one linear pass over the
// text. Error if an offset is past the end or inside a character.
std::vector<std::pair<std::size_t, std::size_t>> code_point_offsets(std::string_view text,
                                                                    const std::vector<CharSpan>& byte_offsets);

namespace tokenizer_detail {
class Pipeline;  // the loaded components (src/torch/model/tokenizer_pipeline.h)
}

class Tokenizer {
 public:
  struct Encoding {
    std::vector<std::int64_t> ids;
    // One per id: the bytes of the input the token stands for, as HF computes
    // them (a token made of part of a multi-byte character covers the whole
    // character; special tokens inserted by add_special_tokens are {0, 0}).
    std::vector<CharSpan> offsets;
  };

  // Reads `tokenizer_json_or_dir` (a tokenizer.json, or a directory holding
  // one). A tokenizer_config.json beside it, if present, supplies bos/eos.
  // Both are read within core/file_io.h's limits (kModelFileLimit for
  // tokenizer.json, kConfigFileLimit for tokenizer_config.json); a FIFO,
  // device or directory in their place is an anchors::Error naming it.
  static std::shared_ptr<Tokenizer> load(const std::string& tokenizer_json_or_dir);
  // Same, from the JSON text; `source` names it in error messages.
  static std::shared_ptr<Tokenizer> from_json(std::string_view json, const std::string& source = "<memory>");

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // HF `Tokenizer.encode(text, add_special_tokens=...)`. The file's
  // "truncation" and "padding" sections are NOT applied (callers that need a
  // length limit use max_length()). `text` must be valid UTF-8 (Error otherwise).
  // Thread-safe.
  Encoding encode(std::string_view text, bool add_special_tokens = false) const;
  // encode(text).ids.size(), the count assign_token_spans needs.
  std::size_t count_tokens(std::string_view text) const;
  // HF `Tokenizer.decode`: ids unknown to the tokenizer (>= vocab_size) are
  // skipped, as HF does; invalid UTF-8 from byte-level tokens becomes U+FFFD.
  // anchors::Error for a negative id (HF: OverflowError).
  std::string decode(const std::vector<std::int64_t>& ids, bool skip_special_tokens = false) const;

  // One past the largest id of the model vocabulary and the added tokens.
  std::int64_t vocab_size() const;
  // The id of a token string as written in the vocabulary (byte-level BPE
  // tokens in their byte-level spelling, e.g. "Ġthe"), or an added token.
  std::optional<std::int64_t> token_to_id(std::string_view token) const;
  // The inverse; Error for an unknown id.
  std::string id_to_token(std::int64_t id) const;
  // "byte_level_bpe" or "wordpiece".
  std::string kind() const;

  const std::vector<AddedToken>& added_tokens() const;
  // True if `id` is a special added token.
  bool is_special(std::int64_t id) const;
  // From tokenizer_config.json's bos_token/eos_token when present; otherwise
  // bos is the special token the post-processor puts before the text (BERT's
  // [CLS], Llama-3's <|begin_of_text|>) and eos is unknown.
  std::optional<std::int64_t> bos_id() const;
  std::optional<std::int64_t> eos_id() const;
  // The ids encode(text, true) puts before and after the text's own tokens
  // (e.g. Llama-3: {<|begin_of_text|>} and {}; BERT: {[CLS]} and {[SEP]}).
  std::vector<std::int64_t> special_prefix_ids() const;
  std::vector<std::int64_t> special_suffix_ids() const;
  std::size_t num_special_tokens_to_add() const;
  // The file's truncation.max_length, if it has one (never applied by encode).
  std::optional<std::size_t> max_length() const;
  // The file this tokenizer was read from.
  const std::string& source() const;

 private:
  explicit Tokenizer(std::unique_ptr<tokenizer_detail::Pipeline> pipeline);
  std::unique_ptr<tokenizer_detail::Pipeline> pipeline_;
};

}  // namespace anchors::model
