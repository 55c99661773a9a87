// Byte-level BPE, merge for merge what HF tokenizers' BPE model does.
#include <fmt/format.h>

#include <array>
#include <mutex>
#include <queue>

#include "anchors/core/error.h"
#include "tokenizer_models.h"
#include "tokenizer_unicode.h"

namespace anchors::model::tokenizer_detail {

void Vocabulary::add(const std::string& token, std::int64_t id, const std::string& source) {
  if (id < 0 || id > std::int64_t{0xFFFFFFF}) {
    throw Error(fmt::format("tokenizer {}: vocabulary id {} of token \"{}\" is out of range", source, id, token));
  }
  const auto [it, inserted] = by_token_.emplace(token, id);
  if (!inserted) {
    throw Error(fmt::format("tokenizer {}: token \"{}\" appears twice in the vocabulary", source, token));
  }
  if (static_cast<std::size_t>(id) >= by_id_.size()) by_id_.resize(static_cast<std::size_t>(id) + 1, nullptr);
  if (by_id_[static_cast<std::size_t>(id)] != nullptr) {
    throw Error(fmt::format("tokenizer {}: id {} is used by both \"{}\" and \"{}\"", source, id,
                            *by_id_[static_cast<std::size_t>(id)], token));
  }
  by_id_[static_cast<std::size_t>(id)] = &it->first;
  if (id > max_id_) max_id_ = id;
}

std::optional<std::int64_t> Vocabulary::find(std::string_view token) const {
  const auto it = by_token_.find(token);
  if (it == by_token_.end()) return std::nullopt;
  return it->second;
}

const std::string* Vocabulary::token(std::int64_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= by_id_.size()) return nullptr;
  return by_id_[static_cast<std::size_t>(id)];
}

namespace {

struct ByteLevelTables {
  std::array<std::string, 256> char_of_byte;
  std::unordered_map<char32_t, unsigned char> byte_of_char;
};

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
// others are shifted to U+0100 and up in byte order.
const ByteLevelTables& byte_level_tables() {
  static const ByteLevelTables tables = [] {
    ByteLevelTables t;
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t c = printable ? static_cast<char32_t>(b) : next++;
      append_utf8(t.char_of_byte[static_cast<std::size_t>(b)], c);
      t.byte_of_char.emplace(c, static_cast<unsigned char>(b));
    }
    return t;
  }();
  return tables;
}

struct Symbol {
  std::int64_t id;
  std::ptrdiff_t prev;
  std::ptrdiff_t next;
  std::size_t begin;
  std::size_t length;  // 0 once merged into its left neighbour
};

struct Merge {
  std::uint32_t rank;
  std::size_t pos;
  std::int64_t id;
  // std::priority_queue is a max-heap: "greater" means popped later.
  bool operator<(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

const std::string& byte_level_char(unsigned char byte) { return byte_level_tables().char_of_byte[byte]; }

std::optional<std::string> byte_level_decode(std::string_view token) {
  const auto& table = byte_level_tables().byte_of_char;
  std::string bytes;
  bytes.reserve(token.size());
  std::size_t i = 0;
  while (i < token.size()) {
    const auto it = table.find(next_code_point(token, i));
    if (it == table.end()) return std::nullopt;
    bytes.push_back(static_cast<char>(it->second));
  }
  return bytes;
}

BytePairModel::BytePairModel(Vocabulary vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                             BpeOptions options, const std::string& source)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  if (options_.unk_token && !vocab_.find(*options_.unk_token)) {
    // HF fails at the first unknown character instead; failing at load is the same contract, earlier.
    throw Error(
        fmt::format("tokenizer {}: BPE unk_token \"{}\" is not in the vocabulary", source, *options_.unk_token));
  }
  const std::size_t prefix_length = options_.continuing_subword_prefix.size();
  merges_.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto left_id = vocab_.find(left);
    const auto right_id = vocab_.find(right);
    if (!left_id || !right_id) {
      throw Error(fmt::format("tokenizer {}: merge {} (\"{}\" \"{}\") uses \"{}\", which is not in the vocabulary",
                              source, rank, left, right, !left_id ? left : right));
    }
    const std::string merged = left + (right.size() >= prefix_length ? right.substr(prefix_length) : std::string());
    const auto merged_id = vocab_.find(merged);
    if (!merged_id) {
      throw Error(fmt::format("tokenizer {}: merge {} (\"{}\" \"{}\") makes \"{}\", which is not in the vocabulary",
                              source, rank, left, right, merged));
    }
    // A repeated pair keeps its last rank, as HF's map does.
    merges_[(static_cast<std::uint64_t>(*left_id) << 32) | static_cast<std::uint64_t>(*right_id)] =
        MergeResult{static_cast<std::uint32_t>(rank), *merged_id};
  }
  for (int b = 0; b < 256; ++b) {
    byte_ids_[b] = vocab_.find(byte_level_char(static_cast<unsigned char>(b))).value_or(-1);
  }
}

const BytePairModel::MergeResult* BytePairModel::find_merge(std::int64_t left, std::int64_t right) const {
  const auto it = merges_.find((static_cast<std::uint64_t>(left) << 32) | static_cast<std::uint64_t>(right));
  return it == merges_.end() ? nullptr : &it->second;
}

std::optional<std::int64_t> BytePairModel::symbol_id(std::string_view word, std::size_t byte, bool first,
                                                     bool last) const {
  const auto b = static_cast<unsigned char>(word[byte]);
  const bool decorated = (!first && !options_.continuing_subword_prefix.empty()) ||
                         (last && !options_.end_of_word_suffix.empty());
  if (!decorated) {
    if (byte_ids_[b] < 0) return std::nullopt;
    return byte_ids_[b];
  }
  std::string s = first ? std::string() : options_.continuing_subword_prefix;
  s += byte_level_char(b);
  if (last) s += options_.end_of_word_suffix;
  return vocab_.find(s);
}

bool WordCache::find(std::string_view word, std::vector<ModelToken>& out) const {
  std::shared_lock lock(mutex_);
  const auto it = entries_.find(word);
  if (it == entries_.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void WordCache::insert(std::string_view word, const ModelToken* begin, const ModelToken* end) {
  std::unique_lock lock(mutex_);
  if (entries_.size() >= kCapacity) return;
  entries_.emplace(std::string(word), std::vector<ModelToken>(begin, end));
}

void BytePairModel::tokenize(std::string_view word, std::vector<ModelToken>& out) const {
  if (word.empty()) return;
  const bool cacheable = word.size() < WordCache::kMaxWordBytes;
  if (cacheable && cache_.find(word, out)) return;
  const std::size_t first = out.size();
  merge_word(word, out);
  if (cacheable) cache_.insert(word, out.data() + first, out.data() + out.size());
}

void BytePairModel::merge_word(std::string_view word, std::vector<ModelToken>& out) const {
  if (options_.ignore_merges) {
    std::string spelled;
    for (char ch : word) spelled += byte_level_char(static_cast<unsigned char>(ch));
    if (const auto id = vocab_.find(spelled)) {
      out.push_back({*id, 0, word.size()});
      return;
    }
  }

  // Initial symbols: one per byte-level character (= one per byte).
  // As in HF's Word, a symbol's position is the sum of the lengths of the
  // symbols before it: a dropped character shifts the offsets after it.
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  std::size_t position = 0;
  auto add_symbol = [&](std::int64_t id, std::size_t length) {
    const auto index = static_cast<std::ptrdiff_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, position, length});
    position += length;
  };
  std::optional<std::int64_t> pending_unk;  // an unk symbol still growing (fuse_unk)
  std::size_t pending_unk_length = 0;
  const auto unk_id = options_.unk_token ? vocab_.find(*options_.unk_token) : std::nullopt;
  for (std::size_t byte = 0; byte < word.size(); ++byte) {
    const bool first = byte == 0, last = byte + 1 == word.size();
    if (const auto id = symbol_id(word, byte, first, last)) {
      if (pending_unk) {
        add_symbol(*pending_unk, pending_unk_length);
        pending_unk.reset();
      }
      add_symbol(*id, 1);
      continue;
    }
    if (unk_id) {
      if (pending_unk && options_.fuse_unk) {
        pending_unk_length += 1;
      } else {
        if (pending_unk) add_symbol(*pending_unk, pending_unk_length);
        pending_unk = *unk_id;
        pending_unk_length = 1;
      }
    }
    // Without an unk token HF drops the character: so do we.
  }
  if (pending_unk) add_symbol(*pending_unk, pending_unk_length);
  if (symbols.empty()) return;
  symbols.back().next = -1;

  std::priority_queue<Merge> queue;
  for (std::size_t pos = 0; pos + 1 < symbols.size(); ++pos) {
    if (const MergeResult* m = find_merge(symbols[pos].id, symbols[pos + 1].id)) queue.push({m->rank, pos, m->id});
  }
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    Symbol& current = symbols[top.pos];
    if (current.length == 0 || current.next < 0) continue;
    const auto next_pos = static_cast<std::size_t>(current.next);
    const Symbol right = symbols[next_pos];
    // Skip entries made stale by an earlier merge.
    const MergeResult* m = find_merge(current.id, right.id);
    if (m == nullptr || m->id != top.id) continue;
    current.id = top.id;
    current.length += right.length;
    current.next = right.next;
    symbols[next_pos].length = 0;
    if (right.next >= 0 && static_cast<std::size_t>(right.next) < symbols.size()) {
      symbols[static_cast<std::size_t>(right.next)].prev = static_cast<std::ptrdiff_t>(top.pos);
    }
    if (current.prev >= 0) {
      const Symbol& left = symbols[static_cast<std::size_t>(current.prev)];
      if (const MergeResult* lm = find_merge(left.id, current.id)) {
        queue.push({lm->rank, static_cast<std::size_t>(current.prev), lm->id});
      }
    }
    if (current.next >= 0) {
      const Symbol& after = symbols[static_cast<std::size_t>(current.next)];
      if (const MergeResult* rm = find_merge(current.id, after.id)) queue.push({rm->rank, top.pos, rm->id});
    }
  }
  for (const Symbol& s : symbols) {
    if (s.length != 0) out.push_back({s.id, s.begin, s.begin + s.length});
  }
}

}  // namespace anchors::model::tokenizer_detail
