#pragma once
// The tokenizer models (internal): byte-level BPE and WordPiece, each turning
// one pre-tokenized word into ids with byte ranges inside that word.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace anchors::model::tokenizer_detail {

struct ModelToken {
  std::int64_t id = 0;
  std::size_t begin = 0;  // bytes of the word
  std::size_t end = 0;
};

// String -> id and id -> string of a model vocabulary.
class Vocabulary {
 public:
  Vocabulary() = default;
  Vocabulary(Vocabulary&&) = default;  // by_id_ points into by_token_'s nodes: moves keep them, copies would not
  Vocabulary& operator=(Vocabulary&&) = default;
  Vocabulary(const Vocabulary&) = delete;
  Vocabulary& operator=(const Vocabulary&) = delete;

  // Error (naming `source`) on a negative id or an id used twice.
  void add(const std::string& token, std::int64_t id, const std::string& source);
  std::optional<std::int64_t> find(std::string_view token) const;
  const std::string* token(std::int64_t id) const;  // nullptr if unknown
  std::int64_t size() const { return static_cast<std::int64_t>(by_token_.size()); }
  std::int64_t max_id() const { return max_id_; }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::int64_t, Hash, std::equal_to<>> by_token_;
  std::vector<const std::string*> by_id_;
  std::int64_t max_id_ = -1;
};

// GPT-2's byte <-> printable character table of the ByteLevel components.
const std::string& byte_level_char(unsigned char byte);  // UTF-8 of the character standing for `byte`
// The bytes a byte-level spelled token stands for; nullopt if a character of
// it is not in the table (an added token such as "<｜User｜>").
std::optional<std::string> byte_level_decode(std::string_view token);

// Memo of word -> tokens for BPE, shared by the threads that encode with one
// tokenizer (a reasoning trace repeats its words a lot). Bounded like HF's.
class WordCache {
 public:
  static constexpr std::size_t kCapacity = 10000;
  static constexpr std::size_t kMaxWordBytes = 256;
  bool find(std::string_view word, std::vector<ModelToken>& out) const;
  void insert(std::string_view word, const ModelToken* begin, const ModelToken* end);

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, std::vector<ModelToken>, Hash, std::equal_to<>> entries_;
};

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool ignore_merges = false;
};

// BPE over byte-level words: the word is the raw UTF-8 of a pre-tokenized
// piece, each byte standing for its byte-level character (what HF's ByteLevel
// pre-tokenizer makes of it).
class BytePairModel {
 public:
  // merges: rank order; Error naming `source` for a merge whose parts or
  // result are not in the vocabulary.
  BytePairModel(Vocabulary vocab, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
                const std::string& source);
  void tokenize(std::string_view word, std::vector<ModelToken>& out) const;
  const Vocabulary& vocabulary() const { return vocab_; }

 private:
  void merge_word(std::string_view word, std::vector<ModelToken>& out) const;
  struct MergeResult {
    std::uint32_t rank;
    std::int64_t id;
  };
  std::optional<std::int64_t> symbol_id(std::string_view word, std::size_t byte, bool first, bool last) const;
  const MergeResult* find_merge(std::int64_t left, std::int64_t right) const;

  Vocabulary vocab_;
  BpeOptions options_;
  std::unordered_map<std::uint64_t, MergeResult> merges_;  // (left id << 32 | right id)
  std::int64_t byte_ids_[256];                              // id of each byte's character, -1 if absent
  mutable WordCache cache_;
};

struct WordPieceOptions {
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  std::size_t max_input_chars_per_word = 100;
};

class WordPieceModel {
 public:
  // Error naming `source` if the unk token is not in the vocabulary.
  WordPieceModel(Vocabulary vocab, WordPieceOptions options, const std::string& source);
  void tokenize(std::string_view word, std::vector<ModelToken>& out) const;
  const Vocabulary& vocabulary() const { return vocab_; }
  const WordPieceOptions& options() const { return options_; }

 private:
  Vocabulary vocab_;
  WordPieceOptions options_;
  std::int64_t unk_id_ = 0;
};

}  // namespace anchors::model::tokenizer_detail
